"""Confusion matrices and IoU, plus the evaluation protocol used for the demo weights."""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from .transforms import normalize, resize_pair

__all__ = ["confusion_matrix", "iou_from_confusion", "predict_labels", "evaluate_pairs"]


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """``(C, C)`` int64 matrix, rows = ground truth, columns = prediction."""
    valid = (label != ignore_index) & (label < num_classes)
    idx = label[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_from_confusion(conf: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
    """Returns ``(mIoU, per-class IoU, present)``.

    A class that never occurs in the ground truth (``present`` False) is excluded
    from the mean; its IoU is NaN.
    """
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    gt = conf.sum(1)
    union = gt + conf.sum(0) - tp
    present = gt > 0
    iou = np.full(len(tp), np.nan)
    iou[present] = tp[present] / union[present]
    miou = float(np.mean(iou[present])) if present.any() else float("nan")
    return miou, iou, present


@torch.no_grad()
def predict_labels(model: torch.nn.Module, rgb: np.ndarray, input_size: Optional[Sequence[int]],
                   mean: Sequence[float], std: Sequence[float],
                   device: torch.device = torch.device("cpu")) -> np.ndarray:
    """Resizes an RGB frame to ``input_size`` (``None``: as is), takes the argmax, and
    resizes the prediction back to the frame size with nearest neighbour."""
    h, w = rgb.shape[:2]
    small = rgb if input_size is None else resize_pair(rgb, None, input_size)[0]
    x = normalize(small, mean, std)[None].to(device)
    pred = model(x).argmax(1)[0].to(torch.uint8).cpu().numpy()
    if pred.shape != (h, w):
        pred = cv2.resize(pred, (w, h), interpolation=cv2.INTER_NEAREST)
    return pred


def evaluate_pairs(model: torch.nn.Module, pairs: Iterable[Tuple[np.ndarray, np.ndarray]],
                   num_classes: int, input_size: Optional[Sequence[int]], mean: Sequence[float],
                   std: Sequence[float], device: torch.device = torch.device("cpu"),
                   ignore_index: int = 255) -> np.ndarray:
    """Summed confusion matrix of the model over ``(rgb, label)`` pairs (model in eval mode)."""
    was_training = model.training
    model.eval()
    conf = np.zeros((num_classes, num_classes), np.int64)
    try:
        for rgb, label in pairs:
            pred = predict_labels(model, rgb, input_size, mean, std, device)
            conf += confusion_matrix(pred, label, num_classes, ignore_index)
    finally:
        model.train(was_training)
    return conf


def iou_table(conf: np.ndarray, class_names: Sequence[str]) -> List[Dict[str, object]]:
    """Per-class rows ``{"class", "iou", "present"}`` for reports."""
    _, iou, present = iou_from_confusion(conf)
    return [{"class": n, "iou": float(i), "present": bool(p)}
            for n, i, p in zip(class_names, iou, present)]
