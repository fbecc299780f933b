"""Image / label folders: ``root/images/*.png`` with ``root/labels/*.png`` of the same
names (trainIds), as ``mfaranet synth`` writes them. Read by ``eval-weights`` and by
training's :class:`~mfaranet_ros.training.datasets.FolderDataset` (no torch here)."""
from __future__ import annotations

import glob
import os
from typing import List, Optional, Tuple

import cv2
import numpy as np

__all__ = ["folder_files", "read_rgb", "read_label"]


def folder_files(root: str, limit: Optional[int] = None) -> List[Tuple[str, str]]:
    """``(image, label)`` paths in name order; FileNotFoundError for no image or a
    missing label (listed at once, before anything is loaded)."""
    images = sorted(glob.glob(os.path.join(root, "images", "*.png")))
    if limit is not None:
        images = images[:limit]
    if not images:
        raise FileNotFoundError(f"no images in {os.path.join(root, 'images')!r}")
    pairs = [(p, os.path.join(root, "labels", os.path.basename(p))) for p in images]
    for _, label in pairs:
        if not os.path.isfile(label):
            raise FileNotFoundError(f"missing label {label!r}")
    return pairs


def read_rgb(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read image {path!r}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: str) -> np.ndarray:
    lab = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise OSError(f"cannot read label {path!r}")
    if lab.ndim != 2:
        raise ValueError(f"label {path!r} must be single-channel, got shape {lab.shape}")
    return lab
