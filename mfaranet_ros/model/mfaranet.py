"""MFARANet: deep-stem ResNet-18 + MFAM + RAM + per-scale heads + ASFM."""
from __future__ import annotations

from typing import Dict, List, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .aggregation import MultiLevelAggregation
from .alignment import RecursiveAlignment
from .encoder import ENCODER_CHANNELS, DeepStemResNet18
from .fusion import AttentionFusion, BoundaryHeads, ScaleHeads

__all__ = ["MFARANet", "ALL_SCALES"]

ALL_SCALES = ("s1", "s2", "s3", "s4")


class MFARANet(nn.Module):
    """Multi-level Feature Aggregation and Recursive Alignment Network.

    Input: a normalised float tensor ``(B, 3, H, W)``, any H, W >= 1.

    In ``eval()`` mode ``forward`` returns logits ``(B, C, H, W)`` at the input size. In
    ``train()`` mode it returns a dict for the training losses (the model holds none):
    ``out`` (fused logits at input size), ``scales`` (the per-scale logits ``S_k`` at
    1/4) and ``boundaries`` (the boundary logits ``B_k`` at 1/4, if built).

    Args:
        num_classes: C (19 for Cityscapes trainIds, 11 for CamVid).
        pruned: MFARANet-Pruned, i.e. ``Z = S_2``. Builds only the modules branch 2
            needs (no attention fusion, no B3/B4/F3, no G2/G3); it loads the same
            weights (``checkpoint.load_checkpoint`` drops the tensors of the
            removed modules by name).
        boundary_heads: build the training-only boundary heads (the released
            checkpoints contain them).
        use_dilation: dilate layer3/layer4 as in the released configs.
        backbone_dropout: optional Dropout2d rates ``[stem, layer1..4]``.
        dim: decoder width (``fam_dim``).
    """

    def __init__(
        self,
        num_classes: int = 19,
        *,
        pruned: bool = False,
        boundary_heads: bool = True,
        use_dilation: bool = True,
        backbone_dropout: Sequence[float] = (0.0,) * 5,
        dim: int = 128,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.pruned = pruned
        self.encoder = DeepStemResNet18(use_dilation=use_dilation, dropout=backbone_dropout)
        self.aggregation = MultiLevelAggregation(ENCODER_CHANNELS, dim, pruned=pruned)
        self.alignment = RecursiveAlignment(dim, pruned=pruned)
        scales = ("s2",) if pruned else ALL_SCALES
        self.heads = ScaleHeads(dim, num_classes, scales)
        self.fusion = None if pruned else AttentionFusion(dim, num_classes, scales)
        self.boundary = BoundaryHeads(dim, scales) if (boundary_heads and not pruned) else None

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Dict[str, object]]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"MFARANet expects a (B, 3, H, W) tensor, got shape {tuple(x.shape)}"
            )
        aligned = self.alignment(self.aggregation(self.encoder(x)))
        scores = self.heads(aligned)
        fused = scores[0] if self.fusion is None else self.fusion(aligned, scores)
        out = F.interpolate(fused, size=x.shape[-2:], mode="bilinear", align_corners=True)
        if not self.training:
            return out
        boundaries: List[torch.Tensor] = [] if self.boundary is None else self.boundary(aligned)
        return {"out": out, "scales": scores, "boundaries": boundaries}
