"""RAM: flow-based recursive alignment of the coarse features to 1/4 resolution (or its
ablations: direct one-step flows, bilinear upsampling)."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import resize_to
from .variants import ALIGNMENTS, ALL_SCALES

__all__ = ["BilinearAlignment", "DirectAlignment", "FlowGrid", "RecursiveAlignment",
           "build_alignment", "identity_grid", "warp"]


def identity_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Identity sampling grid ``(1, H, W, 2)`` (last dim x, y) in the align_corners=True
    convention, on ``like``'s device and dtype."""
    ys = torch.linspace(-1.0, 1.0, height, device=like.device, dtype=like.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=like.device, dtype=like.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1).unsqueeze(0)


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample ``x (B, C, h, w)`` at ``grid (B, H, W, 2)``: upsamples and warps in one step."""
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class FlowGrid(nn.Module):
    """Predicts the sampling grid that aligns a coarse feature to a finer one.

    ``flow = Conv3x3([Conv1x1(fine), up(Conv1x1(coarse))])`` (no BN, no bias), and
    ``grid = identity + flow / (w, h)``: the x offset divided by the fine width, y by
    its height, as the released weights expect. Returns the grid, not a warped tensor.
    """

    def __init__(self, channels: int = 128, reduced: int = 64) -> None:
        super().__init__()
        self.reduce_fine = nn.Conv2d(channels, reduced, 1, bias=False)
        self.reduce_coarse = nn.Conv2d(channels, reduced, 1, bias=False)
        self.flow = nn.Conv2d(2 * reduced, 2, 3, padding=1, bias=False)
        self._grid_cache: Dict[Tuple, torch.Tensor] = {}

    def _base_grid(self, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        # Export and compile trace the construction (it constant-folds for static shapes);
        # eager inference reuses one grid per shape/device/dtype instead of rebuilding it.
        if (torch.compiler.is_compiling() or torch.jit.is_tracing()
                or torch.onnx.is_in_onnx_export()):
            return identity_grid(height, width, like)
        key = (height, width, like.device, like.dtype)
        grid = self._grid_cache.get(key)
        if grid is None:
            if len(self._grid_cache) > 16:
                self._grid_cache.clear()
            grid = self._grid_cache[key] = identity_grid(height, width, like)
        return grid

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        a = self.reduce_fine(fine)
        b = resize_to(self.reduce_coarse(coarse), fine)
        flow = self.flow(torch.cat((a, b), dim=1))
        h, w = flow.shape[-2:]
        scale = torch.tensor([w, h], device=flow.device, dtype=flow.dtype)
        return self._base_grid(h, w, flow) + flow.permute(0, 2, 3, 1) / scale


class RecursiveAlignment(nn.Module):
    """Aligns ``[F1, F2, F3, F4]`` to 1/4 resolution (docs/model.md, RAM).

    All grids come from the unwarped features (``G1 = flow(F1, F2)`` at 1/4,
    ``G2 = flow(F2, F3)`` at 1/8, ``G3 = flow(F3, F4)`` at 1/16) and are reused
    recursively: ``F4' = gs(gs(gs(F4, G3), G2), G1)``. Flow modules are keyed by the
    fine scale of their pair. ``pruned`` keeps only ``G1``: input ``[F1, F2]``,
    output ``[F2']``. ``outputs`` in general: the aligned scales returned; the input is
    then ``F1 .. F_k`` up to the deepest of them (:attr:`needs`).
    """

    def __init__(self, channels: int = 128, pruned: bool = False,
                 outputs: Sequence[str] = ALL_SCALES) -> None:
        super().__init__()
        self.pruned = pruned
        self.outputs = ("s2",) if pruned else tuple(outputs)
        deepest = max(int(s[1]) for s in self.outputs)
        self.needs = ALL_SCALES[:deepest]
        self.flows = nn.ModuleDict({s: FlowGrid(channels) for s in ALL_SCALES[:deepest - 1]})

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        grids = [self.flows[s](fine, coarse)
                 for s, fine, coarse in zip(self.flows, feats, feats[1:])]
        aligned = {}
        for k, (s, f) in enumerate(zip(self.needs, feats)):
            if s in self.outputs:
                for g in reversed(grids[:k]):
                    f = warp(f, g)
                aligned[s] = f
        return [aligned[s] for s in self.outputs]


class DirectAlignment(nn.Module):
    """Each coarse scale warped straight to 1/4 by a flow of its own (the one-step
    alignment RAM is compared with): ``F_k' = gs(F_k, flow_k(F1, F_k))``.

    Flow modules are keyed by the coarse scale they align. Input: ``F1`` and the other
    scales of ``outputs`` (:attr:`needs`); output: the aligned ``outputs``.
    """

    def __init__(self, channels: int = 128, outputs: Sequence[str] = ALL_SCALES) -> None:
        super().__init__()
        self.outputs = tuple(outputs)
        self.needs = tuple(s for s in ALL_SCALES if s == "s1" or s in self.outputs)
        self.flows = nn.ModuleDict({s: FlowGrid(channels) for s in self.needs if s != "s1"})

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        named = dict(zip(self.needs, feats))
        f1 = named["s1"]
        aligned = {s: f1 if s == "s1" else warp(named[s], self.flows[s](f1, named[s]))
                   for s in self.outputs}
        return [aligned[s] for s in self.outputs]


class BilinearAlignment(nn.Module):
    """No alignment: every scale bilinearly upsampled (align_corners=True) to ``F1``'s size.

    Input: ``F1`` (its size is the target) and the other scales of ``outputs``.
    """

    def __init__(self, outputs: Sequence[str] = ALL_SCALES) -> None:
        super().__init__()
        self.outputs = tuple(outputs)
        self.needs = tuple(s for s in ALL_SCALES if s == "s1" or s in self.outputs)

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        named = dict(zip(self.needs, feats))
        return [named[s] if s == "s1" else resize_to(named[s], named["s1"])
                for s in self.outputs]


def build_alignment(kind: str, channels: int, outputs: Sequence[str]) -> nn.Module:
    """The alignment module ``kind`` (``ram``, ``direct``, ``bilinear``) for ``outputs``."""
    if kind == "ram":
        return RecursiveAlignment(channels, outputs=outputs)
    if kind == "direct":
        return DirectAlignment(channels, outputs)
    if kind == "bilinear":
        return BilinearAlignment(outputs)
    raise ValueError(f"alignment {kind!r} is unknown; use one of {ALIGNMENTS}")
