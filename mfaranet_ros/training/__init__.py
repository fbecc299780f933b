"""Training MFARANet: typed recipes, datasets, transforms, MJS losses and the training loop.

Its names load on first use (the command's parser in ``cli`` needs no torch).
"""
from ..lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    ".config": ("ConfigError", "TrainConfig", "apply_overrides", "config_from_dict",
                "load_config"),
    ".datasets": ("CamVidDataset", "CityscapesDataset", "FolderDataset", "GeneratedDataset",
                  "SeededBatches", "build_dataset", "camvid_metadata"),
    ".engine": ("build_optimizer", "poly_lr", "train"),
    ".losses": ("MJSLoss", "balanced_bce", "edge_gated_cross_entropy", "ohem_cross_entropy"),
    ".metrics": ("confusion_matrix", "iou_from_confusion", "predict_labels"),
    ".transforms": ("TrainTransform", "boundary_target"),
})
