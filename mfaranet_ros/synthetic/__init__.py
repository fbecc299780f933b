"""Procedural driving scenes with Cityscapes trainId labels (the demo weights' training data)."""
from .scene import IGNORE, TRAIN_IDS, generate_scene
from .writer import frame_seed, write_dataset

__all__ = ["generate_scene", "frame_seed", "write_dataset", "TRAIN_IDS", "IGNORE"]
