"""Training MFARANet: datasets, transforms, MJS losses and the training loop."""
from .datasets import (CamVidDataset, CityscapesDataset, FolderDataset, GeneratedDataset,
                       SeededBatches, build_dataset, camvid_metadata)
from .engine import DEFAULT_CONFIG, build_optimizer, load_config, merge_config, poly_lr, train
from .losses import MJSLoss, balanced_bce, edge_gated_cross_entropy, ohem_cross_entropy
from .metrics import confusion_matrix, iou_from_confusion, predict_labels
from .transforms import TrainTransform, boundary_target

__all__ = [
    "CamVidDataset", "CityscapesDataset", "FolderDataset", "GeneratedDataset", "SeededBatches",
    "build_dataset", "camvid_metadata", "DEFAULT_CONFIG", "build_optimizer", "load_config",
    "merge_config", "poly_lr", "train", "MJSLoss", "balanced_bce", "edge_gated_cross_entropy",
    "ohem_cross_entropy", "confusion_matrix", "iou_from_confusion",
    "predict_labels", "TrainTransform", "boundary_target",
]
