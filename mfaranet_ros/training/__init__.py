"""Training MFARANet: typed recipes, datasets, transforms, MJS losses and the training loop."""
from .config import ConfigError, TrainConfig, apply_overrides, config_from_dict, load_config
from .datasets import (
                       CamVidDataset,
                       CityscapesDataset,
                       FolderDataset,
                       GeneratedDataset,
                       SeededBatches,
                       build_dataset,
                       camvid_metadata,
)
from .engine import build_optimizer, poly_lr, train
from .losses import MJSLoss, balanced_bce, edge_gated_cross_entropy, ohem_cross_entropy
from .metrics import confusion_matrix, iou_from_confusion, predict_labels
from .transforms import TrainTransform, boundary_target

__all__ = [
    "ConfigError", "TrainConfig", "apply_overrides", "config_from_dict", "load_config",
    "CamVidDataset", "CityscapesDataset", "FolderDataset", "GeneratedDataset", "SeededBatches",
    "build_dataset", "camvid_metadata", "build_optimizer", "poly_lr", "train", "MJSLoss",
    "balanced_bce", "edge_gated_cross_entropy", "ohem_cross_entropy", "confusion_matrix",
    "iou_from_confusion", "predict_labels", "TrainTransform",
    "boundary_target",
]
