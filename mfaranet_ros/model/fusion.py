"""Per-scale heads and ASFM, the attention-based fusion of the four scales."""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

__all__ = ["ScaleHeads", "AttentionFusion", "BoundaryHeads"]


def _scale_dict(scales: Sequence[str], make) -> nn.ModuleDict:
    return nn.ModuleDict({s: make() for s in scales})


class ScaleHeads(nn.Module):
    """One 1x1 classifier (with bias) per aligned feature: ``S_k = Conv1x1(F_k')``."""

    def __init__(self, channels: int, num_classes: int, scales: Sequence[str]) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.classifiers = _scale_dict(scales, lambda: nn.Conv2d(channels, num_classes, 1))

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        return [self.classifiers[s](f) for s, f in zip(self.scales, feats)]


class AttentionHead(nn.Sequential):
    """``Sigmoid(Conv1x1(Dropout(0.5)(ReLU(BN(Conv3x3(x))))))``: per-pixel, per-class weights.

    The dropout is element-wise ``nn.Dropout`` as in the official code, not Dropout2d.
    """

    def __init__(self, channels: int, num_classes: int, hidden: int = 64) -> None:
        super().__init__(
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(hidden, num_classes, 1, bias=False),
            nn.Sigmoid(),
        )


class AttentionFusion(nn.Module):
    """ASFM: ``Z = sum_k S_k * A_k`` with an independent sigmoid attention per scale.

    The weights are not normalised across scales (no softmax): this matches the
    released weights, so it must not be "fixed".
    """

    def __init__(self, channels: int, num_classes: int, scales: Sequence[str]) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.attention = _scale_dict(scales, lambda: AttentionHead(channels, num_classes))

    def forward(self, feats: List[torch.Tensor], scores: List[torch.Tensor]) -> torch.Tensor:
        fused = None
        for s, f, score in zip(self.scales, feats, scores):
            term = score * self.attention[s](f)
            fused = term if fused is None else fused + term
        return fused


class BoundaryHeads(nn.Module):
    """Training-only 1x1 boundary logits ``B_k`` (one channel, with bias) per scale."""

    def __init__(self, channels: int, scales: Sequence[str]) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.heads = _scale_dict(scales, lambda: nn.Conv2d(channels, 1, 1))

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        return [self.heads[s](f) for s, f in zip(self.scales, feats)]
