"""Validation during training: the model's labels on a frame, and the one metric.

The confusion matrix and the IoU are :mod:`mfaranet_ros.evaluation.metrics`' (Cityscapes'
rule: a class counts unless it is absent from both the ground truth and the prediction),
so the validation mIoU of a training run is computed as ``eval-weights`` and
``eval-bag`` compute it.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ..evaluation.metrics import ConfusionMatrix, iou_from_matrix
from .transforms import normalize, resize_pair

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
    """Resizes an RGB frame to ``input_size`` (``None``: as is), takes the argmax, and
    resizes the prediction back to the frame size with nearest neighbour.

    The validation path of the training loop, on the model being trained (the Segmenter
    needs a checkpoint file).
    """
    h, w = rgb.shape[:2]
    small = rgb if input_size is None else resize_pair(rgb, None, input_size)[0]
    x = normalize(small, mean, std)[None].to(device)
    pred = model(x).argmax(1)[0].to(torch.uint8).cpu().numpy()
    if pred.shape != (h, w):
        pred = cv2.resize(pred, (w, h), interpolation=cv2.INTER_NEAREST)
    return pred
