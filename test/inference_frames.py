"""Deterministic test frames for the inference tests (not a test module)."""
from __future__ import annotations

import numpy as np


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A street-like uint8 RGB frame: smooth bands, blobs and some texture (seeded)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.empty((height, width, 3), np.float32)
    frame[..., 0] = 120 + 80 * np.sin(xx / max(width, 1) * 6.0 + seed)
    frame[..., 1] = 60 + 150 * (yy / max(height, 1))
    frame[..., 2] = 200 - 150 * (yy / max(height, 1)) + 30 * np.cos(yy / 7.0)
    for _ in range(4):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.1, 0.3) * min(height, width)
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        frame[blob] = rng.uniform(0, 255, 3)
    frame += rng.normal(0, 12, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)
