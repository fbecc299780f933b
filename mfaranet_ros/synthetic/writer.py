"""Writing generated scenes to disk as an image/label PNG dataset."""
from __future__ import annotations

import os
from typing import Iterable, Optional, Tuple

import cv2
import numpy as np

from .scene import generate_scene

__all__ = ["frame_seed", "write_dataset"]


def frame_seed(seed: int, index: int) -> int:
    """The scene seed of frame ``index`` of a set made with ``seed``.

    Mixed through ``SeedSequence`` so that sets with nearby seeds share no frames.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0])


def write_dataset(out: str, frames: int, size: Tuple[int, int], seed: int,
                  start: int = 0, progress: Optional[Iterable] = None) -> None:
    """Writes ``out/images/{i:06d}.png`` (RGB content) and ``out/labels/{i:06d}.png`` (trainIds).

    Frame ``i`` depends only on ``(seed, i, size)``, so a set can be extended or
    regenerated piecewise (``start``).
    """
    if frames < 0:
        raise ValueError(f"frames must be >= 0, got {frames}")
    img_dir, lab_dir = os.path.join(out, "images"), os.path.join(out, "labels")
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(lab_dir, exist_ok=True)
    indices = range(start, start + frames)
    for i in (progress(indices) if progress else indices):
        rgb, labels = generate_scene(frame_seed(seed, i), size)
        name = f"{i:06d}.png"
        # OpenCV writes BGR; convert so the PNG holds the RGB scene.
        if not cv2.imwrite(os.path.join(img_dir, name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {os.path.join(img_dir, name)}")
        if not cv2.imwrite(os.path.join(lab_dir, name), labels):
            raise OSError(f"could not write {os.path.join(lab_dir, name)}")
