"""MFARANet model, its metadata and checkpoint formats.

Its names load on first use, so a module of this package (``weights``, ``metadata``) can
be imported without torch.
"""
from ..lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    ".checkpoint": ("CheckpointError", "import_official", "load_backbone", "load_checkpoint",
                    "load_init_weights", "read_checkpoint", "save_checkpoint"),
    ".metadata": ("CITYSCAPES_CLASSES", "CITYSCAPES_PALETTE", "ModelMetadata",
                  "cityscapes_metadata"),
    ".mfaranet": ("MFARANet",),
})
