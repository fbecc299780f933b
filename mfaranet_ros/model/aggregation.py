"""MFAM: multi-level feature aggregation over a top-down and a bottom-up pyramid (or FPN, none)."""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from .layers import ConvBNReLU, resize_to
from .variants import AGGREGATIONS, ALL_SCALES

__all__ = ["MultiLevelAggregation"]


class MultiLevelAggregation(nn.Module):
    """Dual-pyramid aggregation (docs/model.md, MFAM), or one of its ablations.

    ``c_i = CBR1(E_i)``; top-down ``T4 = c4, T_i = CBR3(up(T_{i+1}) + c_i)``; bottom-up
    ``B1 = c1, B_i = CBR3(down(B_{i-1}) + c_i)``; merge ``F1 = T1, F2 = CBR3(T2 + B2),
    F3 = CBR3(T3 + B3), F4 = B4``. Modules are keyed by the scale they produce
    (``s1`` = 1/4 ... ``s4`` = 1/32).

    Args:
        in_channels: channels of E1..E4.
        dim: the common channel count (``fam_dim``, 128).
        pruned: build only what branch 2 needs: ``outputs=("s1", "s2")``.
        mode: ``mfam`` (the paper's); ``fpn``: the top-down path alone (``F_i = T_i``,
            ``F4 = c4``); ``none``: the lateral projections alone (``F_i = c_i``).
        outputs: the scales ``forward`` returns, in this order; only the modules they
            depend on are built.
    """

    def __init__(self, in_channels: Sequence[int], dim: int = 128, pruned: bool = False,
                 mode: str = "mfam", outputs: Sequence[str] = ALL_SCALES) -> None:
        super().__init__()
        if mode not in AGGREGATIONS:
            raise ValueError(f"aggregation {mode!r} is unknown; use one of {AGGREGATIONS}")
        self.pruned = pruned
        self.mode = mode
        self.outputs = ("s1", "s2") if pruned else tuple(outputs)
        levels = sorted(int(s[1]) for s in self.outputs)
        # T_k depends on T_{k+1} .. T3, B_k on B_{k-1} .. B2: the finest output decides the
        # top-down modules, the deepest one the bottom-up modules.
        top_down = [s for s in ("s3", "s2", "s1") if int(s[1]) >= levels[0]]
        bottom_up = [s for s in ("s2", "s3", "s4") if int(s[1]) <= levels[-1]]
        if mode == "mfam":
            lateral = ALL_SCALES
        elif mode == "fpn":
            lateral, bottom_up = ALL_SCALES[levels[0] - 1:], []
        else:
            lateral, top_down, bottom_up = self.outputs, [], []
        merge = [s for s in ("s2", "s3") if s in self.outputs and mode == "mfam"]
        self.lateral = nn.ModuleDict(
            {s: ConvBNReLU(c, dim, kernel_size=1)
             for s, c in zip(ALL_SCALES, in_channels) if s in lateral}
        )
        self.top_down = nn.ModuleDict({s: ConvBNReLU(dim, dim) for s in top_down})
        self.bottom_up = nn.ModuleDict({s: ConvBNReLU(dim, dim) for s in bottom_up})
        self.merge = nn.ModuleDict({s: ConvBNReLU(dim, dim) for s in merge})

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        c = {s: self.lateral[s](f) for s, f in zip(ALL_SCALES, feats) if s in self.lateral}
        if self.mode == "none":
            return [c[s] for s in self.outputs]
        t = {"s4": c["s4"]}
        for s, coarser in (("s3", "s4"), ("s2", "s3"), ("s1", "s2")):
            if s in self.top_down:
                t[s] = self.top_down[s](resize_to(t[coarser], c[s]) + c[s])
        if self.mode == "fpn":
            return [t[s] for s in self.outputs]
        b = {"s1": c["s1"]}
        for s, finer in (("s2", "s1"), ("s3", "s2"), ("s4", "s3")):
            if s in self.bottom_up:
                b[s] = self.bottom_up[s](resize_to(b[finer], c[s]) + c[s])
        f = {"s1": t.get("s1"), "s4": b.get("s4")}
        for s in self.merge:
            f[s] = self.merge[s](t[s] + b[s])
        return [f[s] for s in self.outputs]
