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


def make_varied_checkpoint(official, dst) -> None:
    """The official reference weights with their classifiers re-drawn so labels vary.

    The reference checkpoint's weights are random: its argmax is one class on every
    pixel, which would make any parity figure meaningless. Standardising each head's
    input features (mean/std measured on one frame) and drawing fresh 1x1 classifier
    weights gives 18-19 classes per frame with many boundaries and close calls, i.e.
    a hard parity case, while every other tensor stays the official one.
    """
    import torch

    from mfaranet_ros.model import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(official, return_metadata=True)
    captured = {}

    def grab(module, inputs, output):
        captured["feats"] = inputs[0]

    handle = model.heads.register_forward_hook(grab)
    frame = torch.from_numpy(scene(64, 128, 99)).permute(2, 0, 1)[None].float()
    mean, std = torch.tensor(meta.mean), torch.tensor(meta.std)
    x = (frame - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        model(x)
    handle.remove()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for s, feat in zip(model.heads.scales, captured["feats"]):
            conv = model.heads.classifiers[s]
            mu, sd = feat.mean((0, 2, 3)), feat.std((0, 2, 3)) + 1e-3
            w = torch.randn(conv.weight.shape[:2], generator=gen) / sd
            conv.weight.copy_(w[:, :, None, None])
            conv.bias.copy_(-(w @ mu))
    meta.source = "test: official reference weights, classifiers re-drawn (varied labels)"
    save_checkpoint(dst, model, meta)
