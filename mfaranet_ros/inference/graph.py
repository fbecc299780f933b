"""The module every backend runs, exports or compiles: pixels in, labels out.

Wrapping MFARANet this way keeps the full-resolution logits (159 MB fp32 at
1024x2048) inside the graph: only uint8 labels, and on request a float confidence,
leave it (writing and re-reading the logits would cost more than the argmax; see
docs/inference.md).
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["SegmentationGraph", "gather_grid_sample", "GatherGridSample"]


class SegmentationGraph(nn.Module):
    """``(B, H, W, 3)`` RGB pixels on the 0..255 scale -> ``(B, H, W)`` labels [+ confidence].

    Args:
        model: MFARANet in eval mode (logits at input size).
        mean, std: normalisation on the 0..255 RGB scale (from the checkpoint metadata).
        confidence: also return the max softmax probability ``(B, H, W)`` float32.
        compute_dtype: dtype the network runs in (float32 or float16); the input may
            be any dtype (uint8 for ONNX Runtime and torch, float for TensorRT).
        label_dtype: dtype of the label output (uint8; int32 where a compiler lacks
            uint8 outputs).
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], *,
                 confidence: bool = False, compute_dtype: torch.dtype = torch.float32,
                 label_dtype: torch.dtype = torch.uint8) -> None:
        super().__init__()
        self.model = model
        self.confidence = confidence
        self.compute_dtype = compute_dtype
        self.label_dtype = label_dtype
        mean_t = torch.tensor([float(v) for v in mean], dtype=torch.float32).view(1, 3, 1, 1)
        inv_std = 1.0 / torch.tensor([float(v) for v in std], dtype=torch.float32).view(1, 3, 1, 1)
        # Folded into one multiply-add: x * inv_std - mean * inv_std.
        self.register_buffer("scale", inv_std.to(compute_dtype), persistent=False)
        self.register_buffer("shift", (-mean_t * inv_std).to(compute_dtype), persistent=False)

    def forward(self, pixels: torch.Tensor
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        # NHWC -> NCHW as a view: on torch this is already channels_last memory.
        x = pixels.permute(0, 3, 1, 2).to(self.compute_dtype)
        x = x * self.scale + self.shift
        logits = self.model(x)
        if not self.confidence:
            return logits.argmax(1).to(self.label_dtype)
        logits = logits.float()
        # argmax and amax, not max(1): TensorRT converts a max whose values and indices are
        # both used only by leaving it to PyTorch, between two engines.
        labels = logits.argmax(1)
        top = logits.amax(1, keepdim=True)
        # max softmax probability = 1 / sum_c exp(l_c - l_max)
        conf = torch.reciprocal(torch.exp(logits - top).sum(1))
        return labels.to(self.label_dtype), conf


def gather_grid_sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(x, grid, "bilinear", "zeros", align_corners=True)`` from gathers.

    ``x (B, C, h, w)``, ``grid (B, H, W, 2)`` -> ``(B, C, H, W)``. Each output pixel
    gathers its four neighbours as whole C-vectors (rows of an NHWC view) and blends
    them; out-of-range neighbours weigh zero. ONNX Runtime's CPU ``GridSample`` kernel
    samples channel by channel and was about 2x slower than this on the flow warps
    (128 channels at 1/4 resolution), ~20 % of the whole network's time.
    """
    b, c, h, w = x.shape
    out_h, out_w = grid.shape[1], grid.shape[2]
    gx = (grid[..., 0] + 1) * ((w - 1) / 2)
    gy = (grid[..., 1] + 1) * ((h - 1) / 2)
    fx, fy = torch.floor(gx), torch.floor(gy)
    wx1, wy1 = gx - fx, gy - fy
    wx0, wy0 = 1 - wx1, 1 - wy1
    x0, y0 = fx.to(torch.int64), fy.to(torch.int64)
    rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
    offset = (torch.arange(b, device=x.device) * (h * w)).view(b, 1, 1)
    out = None
    corners = ((0, 0, wy0 * wx0), (0, 1, wy0 * wx1), (1, 0, wy1 * wx0), (1, 1, wy1 * wx1))
    for dy, dx, weight in corners:
        xx, yy = x0 + dx, y0 + dy
        inside = ((xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)).to(x.dtype)
        index = torch.clamp(yy, 0, h - 1) * w + torch.clamp(xx, 0, w - 1) + offset
        term = rows.index_select(0, index.reshape(-1)).view(b, out_h, out_w, c)
        term = term * (weight * inside).unsqueeze(-1)
        out = term if out is None else out + term
    return out.permute(0, 3, 1, 2)


class GatherGridSample(TorchFunctionMode):
    """While active, bilinear/zeros/align_corners ``F.grid_sample`` calls run
    :func:`gather_grid_sample` instead (used around the ONNX export); other modes pass."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.grid_sample:
            names = ("input", "grid", "mode", "padding_mode", "align_corners")
            bound = dict(zip(names, args), **kwargs)
            if (bound.get("mode", "bilinear") == "bilinear"
                    and bound.get("padding_mode", "zeros") == "zeros"
                    and bound.get("align_corners") is True and bound["input"].dim() == 4):
                return gather_grid_sample(bound["input"], bound["grid"])
        return func(*args, **kwargs)
