"""Small building blocks shared by the decoder modules."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvBNReLU", "resize_to"]


class ConvBNReLU(nn.Sequential):
    """``Conv(k x k, no bias) -> BatchNorm -> ReLU``; children are named ``0``, ``1``, ``2``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def resize_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize (align_corners=True) of ``x`` to the spatial size of ``ref``.

    MFARANet resizes in both directions this way: the bottom-up path "downsamples" by
    interpolation too, never by strided convolution or pooling.
    """
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=True)
