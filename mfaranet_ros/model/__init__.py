"""MFARANet model, its metadata and checkpoint formats."""
from .checkpoint import (
    CheckpointError,
    import_official,
    load_backbone,
    load_checkpoint,
    load_init_weights,
    read_checkpoint,
    save_checkpoint,
)
from .metadata import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, ModelMetadata, cityscapes_metadata
from .mfaranet import MFARANet

__all__ = [
    "MFARANet",
    "ModelMetadata",
    "CheckpointError",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "cityscapes_metadata",
    "load_checkpoint",
    "save_checkpoint",
    "read_checkpoint",
    "import_official",
    "load_backbone",
    "load_init_weights",
]

