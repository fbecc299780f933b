"""MFARANet: deep-stem ResNet-18 + MFAM + RAM + per-scale heads + ASFM, each part switchable."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .aggregation import MultiLevelAggregation
from .alignment import build_alignment
from .encoder import DeepStemResNet
from .fusion import BoundaryHeads, ScaleHeads, build_fusion
from .variants import ALL_SCALES, PAPER, Architecture

__all__ = ["MFARANet", "ALL_SCALES"]


class MFARANet(nn.Module):
    """Multi-level Feature Aggregation and Recursive Alignment Network.

    Input: a normalised float tensor ``(B, 3, H, W)``, any H, W >= 1.

    In ``eval()`` mode ``forward`` returns logits ``(B, C, H, W)`` at the input size. In
    ``train()`` mode it returns a dict for the training losses (the model holds none):
    ``out`` (fused logits at input size), ``scales`` (the per-scale logits ``S_k`` at
    1/4) and ``boundaries`` (the boundary logits ``B_k`` at 1/4, if built).

    Args:
        num_classes: C (19 for Cityscapes trainIds, 11 for CamVid).
        architecture: which variant of each part (:class:`~.variants.Architecture`,
            or its dict); the default is the paper's model with the official keys.
        pruned: MFARANet-Pruned, i.e. ``Z = S_2``. Builds only the modules branch 2
            needs (no fusion, no B3/B4/F3, no G2/G3); it loads the same weights as the
            unpruned architecture (``checkpoint.load_checkpoint`` drops the tensors of
            the removed modules by name).
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
        architecture: Union[Architecture, Dict[str, str], None] = None,
        pruned: bool = False,
        boundary_heads: bool = True,
        use_dilation: bool = True,
        backbone_dropout: Sequence[float] = (0.0,) * 5,
        dim: int = 128,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        arch = architecture if isinstance(architecture, Architecture) else (
            PAPER if architecture is None else Architecture.from_dict(architecture))
        self.num_classes = num_classes
        self.pruned = pruned
        #: the architecture of the weights (a pruned model reads them through branch 2)
        self.architecture = arch
        built = arch.pruned() if pruned else arch
        scales = built.scales
        self.encoder = DeepStemResNet(arch.backbone, use_dilation=use_dilation,
                                      dropout=backbone_dropout)
        # each part builds only what the next one needs: the heads' scales decide what
        # is aligned, the alignment what is aggregated
        self.alignment = build_alignment(built.alignment, dim, scales)
        self.aggregation = MultiLevelAggregation(self.encoder.channels, dim,
                                                 mode=arch.aggregation,
                                                 outputs=self.alignment.needs)
        self.heads = ScaleHeads(dim, num_classes, scales)
        self.fusion: Optional[nn.Module] = build_fusion(built.fusion, dim, num_classes, scales)
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
