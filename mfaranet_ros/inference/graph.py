"""The module every backend runs, exports or compiles: pixels in, labels out.

Wrapping MFARANet this way keeps the full-resolution logits (159 MB fp32 at
1024x2048) inside the graph: only uint8 labels, and on request a float confidence,
leave it (see shared/docs/PERFORMANCE.md).
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch
from torch import nn

__all__ = ["SegmentationGraph"]


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

    def forward(self, pixels: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        # NHWC -> NCHW as a view: on torch this is already channels_last memory.
        x = pixels.permute(0, 3, 1, 2).to(self.compute_dtype)
        x = x * self.scale + self.shift
        logits = self.model(x)
        if not self.confidence:
            return logits.argmax(1).to(self.label_dtype)
        logits = logits.float()
        top, labels = logits.max(1)
        # max softmax probability = 1 / sum_c exp(l_c - l_max)
        conf = torch.reciprocal(torch.exp(logits - top.unsqueeze(1)).sum(1))
        return labels.to(self.label_dtype), conf
