"""Each MJS loss term against a small case computed by hand."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mfaranet_ros.training.losses import (
    MJSLoss,
    balanced_bce,
    edge_gated_cross_entropy,
    ohem_cross_entropy,
)


def _two_class_logits(p_class0):
    """(1, 2, 1, N) logits whose softmax gives class 0 the probabilities ``p_class0``."""
    p = torch.tensor(p_class0, dtype=torch.float64)
    return torch.stack([torch.log(p), torch.log(1 - p)])[None, :, None, :]


def test_ohem_keeps_hard_pixels_up_to_threshold():
    # ground truth class 0 everywhere; p(class 0) per pixel:
    probs = [0.9, 0.2, 0.6, 0.95, 0.75]
    logits = _two_class_logits(probs)
    target = torch.zeros(1, 1, 5, dtype=torch.long)
    # min_kept = 2: the 2nd smallest p is 0.6 -> threshold max(0.7, 0.6) = 0.7 -> keeps 0.2, 0.6
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=2)
    assert math.isclose(loss.item(), (-math.log(0.2) - math.log(0.6)) / 2, rel_tol=1e-9)
    # min_kept = 4: the 4th smallest p is 0.9 > 0.7 -> threshold 0.9 -> keeps 0.2, 0.6, 0.75, 0.9
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=4)
    expected = -(math.log(0.2) + math.log(0.6) + math.log(0.75) + math.log(0.9)) / 4
    assert math.isclose(loss.item(), expected, rel_tol=1e-9)


def test_ohem_ignores_255_and_falls_back_to_plain_ce():
    logits = _two_class_logits([0.9, 0.2, 0.6])
    target = torch.tensor([[[0, 255, 0]]])
    # only 2 valid pixels < min_kept 3: plain CE over the valid ones
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=3)
    assert math.isclose(loss.item(), -(math.log(0.9) + math.log(0.6)) / 2, rel_tol=1e-9)


def test_balanced_bce_weights_by_the_other_class_share():
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0], dtype=torch.float64).view(1, 1, 1, 4)
    edge = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64).view(1, 1, 1, 4)

    def bce(x, y):
        s = 1 / (1 + math.exp(-x))
        return -(y * math.log(s) + (1 - y) * math.log(1 - s))

    # pos = 1, neg = 3: positives weigh 3/4, negatives 1/4; mean over all 4 pixels
    expected = (0.75 * bce(2.0, 1) + 0.25 * (bce(-1.0, 0) + bce(0.5, 0) + bce(0.0, 0))) / 4
    assert math.isclose(balanced_bce(logits, edge).item(), expected, rel_tol=1e-9)


def test_edge_gated_ce_image_weights_sum_and_empty_gate():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 1, 4, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[[0, 0, 1, 2]], [[1, 1, 1, 1]]])
    # image 0: the gate (logit > 0.8) passes pixels 0, 1, 2 -> classes {0: 2, 1: 1} of 3
    # image 1: nothing passes -> contributes 0 instead of 0/0
    gate = torch.tensor([[[[0.9, 5.0, 0.81, 0.8]]], [[[0.0, -1.0, 0.5, 0.8]]]],
                        dtype=torch.float64, requires_grad=True)
    loss = edge_gated_cross_entropy(logits, target, gate, gate=0.8)
    logp = F.log_softmax(logits.detach(), dim=1)[0, :, 0]
    w0, w1 = 1 + (1 - 2 / 3), 1 + (1 - 1 / 3)
    expected = -(w0 * logp[0, 0] + w0 * logp[0, 1] + w1 * logp[1, 2]) / (2 * w0 + w1)
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-9)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert gate.grad is None, "the gate is a hard mask: no gradient into the boundary head"
    # every image empty: a finite zero that still backpropagates
    empty = edge_gated_cross_entropy(logits, target, torch.full_like(gate, -3.0), gate=0.8)
    assert empty.item() == 0.0 and empty.requires_grad


def test_mjs_total_is_the_weighted_sum_of_its_terms():
    torch.manual_seed(1)
    target = torch.randint(0, 4, (2, 8, 8))
    target[0, :2] = 255
    edge = (torch.rand(2, 1, 8, 8) > 0.7).float()
    outputs = {"out": torch.randn(2, 4, 8, 8),
               "scales": [torch.randn(2, 4, 2, 2) for _ in range(4)],
               "boundaries": [torch.randn(2, 1, 2, 2) for _ in range(4)]}
    total, parts = MJSLoss(min_kept=50)(outputs, target, edge)

    def up(x):
        return F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=True)

    expected = F.cross_entropy(outputs["out"], target, ignore_index=255)
    for s, b in zip(outputs["scales"], outputs["boundaries"]):
        expected = (expected + ohem_cross_entropy(up(s), target, 0.7, 50)
                    + 0.3 * balanced_bce(up(b), edge)
                    + 0.1 * edge_gated_cross_entropy(up(s), target, up(b)))
    assert torch.allclose(total, expected)
    assert torch.allclose(total, parts["main"] + parts["ohem"] + 0.3 * parts["edge"]
                          + 0.1 * parts["gated"])
