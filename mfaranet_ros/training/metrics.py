"""Validation during training: the model's labels on a frame, and the one metric.

The confusion matrix and the IoU are :mod:`mfaranet_ros.evaluation.metrics`' (Cityscapes'
rule: a class counts unless it is absent from both the ground truth and the prediction),
so the validation mIoU of a training run is computed as ``eval-weights`` and
``eval-bag`` compute it.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ..evaluation.metrics import ConfusionMatrix, iou_from_matrix
from ..inference.graph import SegmentationGraph
from ..inference.processing import (
    letterbox_fill,
    letterbox_geometry,
    letterbox_into,
    restore_labels,
)

__all__ = ["confusion_matrix", "iou_from_confusion", "predict_labels"]


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """``(C, C)`` int64 matrix of one frame, rows = ground truth, columns = prediction.

    Args:
        pred: ``(H, W)`` predicted trainIds ``0 .. C-1``.
        label: ``(H, W)`` true trainIds ``0 .. C-1`` or ``ignore_index``.
    """
    return ConfusionMatrix(num_classes, ignore_index).frame_matrix(pred, label)


def iou_from_confusion(conf: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
    """Returns ``(mIoU, per-class IoU, counted)`` of a ``(C, C)`` confusion matrix.

    A class absent from both the ground truth and the prediction (``counted`` False) has
    an undefined (NaN) IoU and is left out of the mean; a class predicted but absent from
    the ground truth counts, with IoU 0.
    """
    iou = iou_from_matrix(conf)
    counted = ~np.isnan(iou)
    miou = float(iou[counted].mean()) if counted.any() else float("nan")
    return miou, iou, counted


@torch.no_grad()
def predict_labels(model: torch.nn.Module, rgb: np.ndarray, input_size: Optional[Sequence[int]],
                   mean: Sequence[float], std: Sequence[float],
                   device: torch.device = torch.device("cpu")) -> np.ndarray:
    """The Segmenter's labels for an RGB frame, on the model being trained.

    The same steps as :class:`~mfaranet_ros.inference.Segmenter` (which needs a checkpoint
    file): letterboxed into ``input_size`` (``None``: the frame as it is), aspect ratio kept
    and padded with the mean; normalised and argmaxed by the graph every backend runs; the
    valid region's labels back to the frame's size (nearest). So the validation mIoU of a
    training run equals ``eval-weights``' on the same weights, also when the frame's
    aspect ratio is not the input's.
    """
    h, w = rgb.shape[:2]
    box = letterbox_geometry((h, w), (h, w) if input_size is None else tuple(input_size))
    pixels = np.empty((1, *box.canvas, 3), np.uint8)
    letterbox_into(np.ascontiguousarray(rgb), pixels[0], box, letterbox_fill(mean))
    graph = SegmentationGraph(model, mean, std).to(device)
    labels = graph(torch.from_numpy(pixels).to(device))[0].cpu().numpy()
    return restore_labels(labels, box)
