"""MFAM: multi-level feature aggregation over a top-down and a bottom-up pyramid."""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from .layers import ConvBNReLU, resize_to

__all__ = ["MultiLevelAggregation"]


class MultiLevelAggregation(nn.Module):
    """Dual-pyramid aggregation (docs/model.md, MFAM).

    ``c_i = CBR1(E_i)``; top-down ``T4 = c4, T_i = CBR3(up(T_{i+1}) + c_i)``; bottom-up
    ``B1 = c1, B_i = CBR3(down(B_{i-1}) + c_i)``; merge ``F1 = T1, F2 = CBR3(T2 + B2),
    F3 = CBR3(T3 + B3), F4 = B4``. Modules are keyed by the scale they produce
    (``s1`` = 1/4 ... ``s4`` = 1/32).

    Args:
        in_channels: channels of E1..E4.
        dim: the common channel count (``fam_dim``, 128).
        pruned: build only what branch 2 needs (``F1`` for the first flow and ``F2``);
            ``forward`` then returns ``[F1, F2]``.
    """

    def __init__(self, in_channels: Sequence[int], dim: int = 128, pruned: bool = False) -> None:
        super().__init__()
        self.pruned = pruned
        self.lateral = nn.ModuleDict(
            {f"s{i + 1}": ConvBNReLU(c, dim, kernel_size=1) for i, c in enumerate(in_channels)}
        )
        self.top_down = nn.ModuleDict({s: ConvBNReLU(dim, dim) for s in ("s3", "s2", "s1")})
        bottom_up_scales = ("s2",) if pruned else ("s2", "s3", "s4")
        self.bottom_up = nn.ModuleDict({s: ConvBNReLU(dim, dim) for s in bottom_up_scales})
        merge_scales = ("s2",) if pruned else ("s2", "s3")
        self.merge = nn.ModuleDict({s: ConvBNReLU(dim, dim) for s in merge_scales})

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        c1, c2, c3, c4 = (self.lateral[f"s{i + 1}"](f) for i, f in enumerate(feats))
        t3 = self.top_down["s3"](resize_to(c4, c3) + c3)
        t2 = self.top_down["s2"](resize_to(t3, c2) + c2)
        t1 = self.top_down["s1"](resize_to(t2, c1) + c1)
        b2 = self.bottom_up["s2"](resize_to(c1, c2) + c2)
        f2 = self.merge["s2"](t2 + b2)
        if self.pruned:
            return [t1, f2]
        b3 = self.bottom_up["s3"](resize_to(b2, c3) + c3)
        b4 = self.bottom_up["s4"](resize_to(b3, c4) + c4)
        f3 = self.merge["s3"](t3 + b3)
        return [t1, f2, f3, b4]
