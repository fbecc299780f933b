"""Per-scale heads and ASFM, the attention-based fusion of the four scales (and its ablations)."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

__all__ = ["ScaleHeads", "AttentionFusion", "BoundaryHeads", "ConcatFusion", "ScoreFusion",
           "build_fusion"]


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


class ScoreFusion(nn.Module):
    """Parameter-free fusion of the score maps: their element-wise ``mean`` or ``max``."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"score fusion is 'mean' or 'max', got {mode!r}")
        self.mode = mode

    def forward(self, feats: List[torch.Tensor], scores: List[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(scores, dim=0)
        return stacked.mean(dim=0) if self.mode == "mean" else stacked.amax(dim=0)


class ConcatFusion(nn.Module):
    """``Z = Conv1x1(concat(F_1', ..., F_4'))`` (with bias): a learned fusion of the aligned
    features that weighs scales per class but, unlike ASFM, not per pixel."""

    def __init__(self, channels: int, num_classes: int, scales: Sequence[str]) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(channels * len(scales), num_classes, 1)

    def forward(self, feats: List[torch.Tensor], scores: List[torch.Tensor]) -> torch.Tensor:
        return self.classifier(torch.cat(feats, dim=1))


def build_fusion(kind: str, channels: int, num_classes: int,
                 scales: Sequence[str]) -> Optional[nn.Module]:
    """The fusion module ``kind``; None for one scale alone (``Z = S_k``)."""
    if len(scales) == 1:
        return None
    if kind == "asfm":
        return AttentionFusion(channels, num_classes, scales)
    if kind in ("mean", "max"):
        return ScoreFusion(kind)
    if kind == "concat":
        return ConcatFusion(channels, num_classes, scales)
    raise ValueError(f"fusion {kind!r} is unknown for {len(scales)} scales")


class BoundaryHeads(nn.Module):
    """Training-only 1x1 boundary logits ``B_k`` (one channel, with bias) per scale."""

    def __init__(self, channels: int, scales: Sequence[str]) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.heads = _scale_dict(scales, lambda: nn.Conv2d(channels, 1, 1))

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        return [self.heads[s](f) for s, f in zip(self.scales, feats)]
