"""Multi-scale Joint Supervision (MJS) losses (docs/model.md, training losses).

``L = CE(out, y) + sum_k [ OHEM_CE(up(S_k), y) + 0.3 BalancedBCE(up(B_k), e)
                            + 0.1 EdgeGatedCE(up(S_k), y, up(B_k)) ]``

where ``up`` is a bilinear (align_corners=True) resize to the label size.
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ohem_cross_entropy", "balanced_bce", "edge_gated_cross_entropy", "MJSLoss"]


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, thresh: float = 0.7,
                       min_kept: int = 100_000, ignore_index: int = 255) -> torch.Tensor:
    """Online hard example mining cross-entropy.

    Keeps the valid pixels whose ground-truth-class probability is ``<= max(thresh,
    p_(min_kept))``, where ``p_(min_kept)`` is the ``min_kept``-th smallest such
    probability in the batch, and averages their CE. With fewer valid pixels than
    ``min_kept`` it is plain CE.

    Args:
        logits: ``(B, C, H, W)``; target: ``(B, H, W)`` int64 with ``ignore_index``.
    """
    valid = target != ignore_index
    n_valid = int(valid.sum())
    if n_valid < min_kept or n_valid == 0:
        return F.cross_entropy(logits, target, ignore_index=ignore_index)
    with torch.no_grad():
        prob = torch.softmax(logits.float(), dim=1)
        safe = torch.where(valid, target, torch.zeros_like(target))
        p_true = prob.gather(1, safe.unsqueeze(1)).squeeze(1)
        kth = torch.kthvalue(p_true[valid], min_kept).values
        threshold = torch.clamp(kth, min=thresh)
        keep = valid & (p_true <= threshold)
    hard = torch.where(keep, target, torch.full_like(target, ignore_index))
    return F.cross_entropy(logits, hard, ignore_index=ignore_index)


def balanced_bce(logits: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
    """Class-balanced binary CE over the whole batch (GSCNN ``bce2d``).

    Positives weigh ``neg / (pos + neg)``, negatives ``pos / (pos + neg)``; the weighted
    BCE is averaged over all pixels.

    Args:
        logits: ``(B, 1, H, W)`` boundary logits; edge: same shape, 0/1 floats.
    """
    pos = (edge == 1).sum().float()
    neg = (edge == 0).sum().float()
    total = pos + neg
    weight = torch.zeros_like(edge)
    weight = torch.where(edge == 1, neg / total, weight)
    weight = torch.where(edge == 0, pos / total, weight)
    return F.binary_cross_entropy_with_logits(logits, edge, weight=weight, reduction="mean")


def edge_gated_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                             boundary_logits: torch.Tensor, gate: float = 0.8,
                             ignore_index: int = 255) -> torch.Tensor:
    """Boundary-gated, image-weighted CE, summed over the images of the batch.

    The label is kept only where the boundary *logit* exceeds ``gate`` (a hard mask; no
    gradient reaches the boundary head through it). Each image then gets a class-
    weighted mean NLL with weights ``1 + (1 - freq_c)`` for the classes present in its
    gated label (frequency among its gated pixels) and 1 for the others. An image with
    no gated pixel contributes 0 (the reference code would produce 0/0 = NaN).

    Args:
        logits: ``(B, C, H, W)``; target: ``(B, H, W)``; boundary_logits: ``(B, 1, H, W)``.
    """
    num_classes = logits.shape[1]
    with torch.no_grad():
        gated = torch.where(boundary_logits.squeeze(1) > gate, target,
                            torch.full_like(target, ignore_index))
    log_p = F.log_softmax(logits, dim=1)
    total = logits.sum() * 0.0  # keeps the graph (and the dtype) when every image is empty
    for b in range(logits.shape[0]):
        y = gated[b]
        valid = (y != ignore_index) & (y >= 0) & (y < num_classes)
        n = int(valid.sum())
        if n == 0:
            continue
        counts = torch.bincount(y[valid], minlength=num_classes).to(log_p.dtype)
        freq = counts / n
        weights = torch.where(counts > 0, 2.0 - freq, torch.ones_like(freq))
        total = total + F.nll_loss(log_p[b:b + 1], torch.where(valid, y, ignore_index)[None],
                                   weight=weights, ignore_index=ignore_index)
    return total


class MJSLoss(nn.Module):
    """The full MFARANet training loss over the train-mode model output.

    ``forward(outputs, target, edge)`` returns the total loss and a dict of detached
    components (``main``, ``ohem``, ``edge``, ``gated``, each summed over scales).
    """

    def __init__(self, ohem_thresh: float = 0.7, min_kept: int = 100_000,
                 seg_weight: float = 1.0, edge_weight: float = 0.3, att_weight: float = 0.1,
                 gate: float = 0.8, ignore_index: int = 255) -> None:
        super().__init__()
        self.ohem_thresh, self.min_kept = ohem_thresh, min_kept
        self.seg_weight, self.edge_weight, self.att_weight = seg_weight, edge_weight, att_weight
        self.gate, self.ignore_index = gate, ignore_index

    def forward(self, outputs: Dict[str, object], target: torch.Tensor, edge: torch.Tensor):
        size = target.shape[-2:]

        def up(x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=True)

        main = F.cross_entropy(outputs["out"].float(), target, ignore_index=self.ignore_index)
        scales: Sequence[torch.Tensor] = outputs["scales"]  # type: ignore[assignment]
        bounds: Sequence[torch.Tensor] = (outputs.get("boundaries")  # type: ignore[assignment]
                                          or [])
        parts = {"main": main.detach(), "ohem": main.new_zeros(()), "edge": main.new_zeros(()),
                 "gated": main.new_zeros(())}
        total = main
        for k, s in enumerate(scales):
            s_up = up(s)
            ohem = ohem_cross_entropy(s_up, target, self.ohem_thresh, self.min_kept,
                                      self.ignore_index)
            total = total + self.seg_weight * ohem
            parts["ohem"] += ohem.detach()
            if k < len(bounds):
                b_up = up(bounds[k])
                e = balanced_bce(b_up, edge)
                g = edge_gated_cross_entropy(s_up, target, b_up, self.gate, self.ignore_index)
                total = total + self.edge_weight * e + self.att_weight * g
                parts["edge"] += e.detach()
                parts["gated"] += g.detach()
        return total, parts
