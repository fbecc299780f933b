"""Segmentation accuracy and latency statistics.

The accuracy definitions are Cityscapes' (``cityscapesscripts``' pixel-level evaluation),
written in trainId space: rows of the confusion matrix are ground truth, columns are
predictions, and pixels whose ground truth is the ignore index take no part at all.
A class's IoU is ``tp / (tp + fp + fn)``; it is undefined (NaN) when the class is neither
in the ground truth nor predicted, and the mIoU averages the defined IoUs only.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..timing import summarize_times

__all__ = ["ConfusionMatrix", "iou_from_matrix", "LatencyStats", "predictions_miou"]


def iou_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU of a ``(C, C)`` confusion matrix (rows: ground truth); NaN if undefined."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    denom = matrix.sum(axis=0) + matrix.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), np.nan)


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


class ConfusionMatrix:
    """Accumulates a ``(C, C)`` confusion matrix over frames of trainId label images.

    Args:
        num_classes: C, the number of evaluated classes (trainIds ``0 .. C-1``).
        ignore_index: ground-truth value whose pixels are left out (Cityscapes: 255).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def frame_matrix(self, prediction: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
        """The confusion matrix of one frame (not accumulated).

        Args:
            prediction: ``(H, W)`` integer trainIds, every value in ``0 .. C-1``.
            ground_truth: ``(H, W)`` integer trainIds, ``0 .. C-1`` or ``ignore_index``.
        """
        prediction = np.asarray(prediction)
        ground_truth = np.asarray(ground_truth)
        if prediction.shape != ground_truth.shape:
            raise ValueError(
                f"prediction {prediction.shape} and ground truth {ground_truth.shape} differ "
                f"in size; evaluate at the ground truth's resolution")
        if prediction.ndim != 2:
            raise ValueError(f"expected (H, W) label images, got shape {prediction.shape}")
        c = self.num_classes
        valid = ground_truth != self.ignore_index
        gt = ground_truth[valid].astype(np.int64)
        pred = prediction[valid].astype(np.int64)
        if gt.size and (gt.min() < 0 or gt.max() >= c):
            bad = sorted(set(np.unique(gt[(gt < 0) | (gt >= c)]).tolist()))
            raise ValueError(
                f"ground truth holds values {bad[:10]} outside 0..{c - 1} and not the ignore "
                f"index {self.ignore_index}: is it trainIds?")
        if pred.size and (pred.min() < 0 or pred.max() >= c):
            bad = sorted(set(np.unique(pred[(pred < 0) | (pred >= c)]).tolist()))
            raise ValueError(f"prediction holds values {bad[:10]} outside 0..{c - 1}")
        return np.bincount(gt * c + pred, minlength=c * c).reshape(c, c)

    def update(self, prediction: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
        """Adds one frame; returns that frame's own confusion matrix."""
        frame = self.frame_matrix(prediction, ground_truth)
        self.matrix += frame
        return frame

    @property
    def total_pixels(self) -> int:
        return int(self.matrix.sum())

    def iou(self) -> np.ndarray:
        """``(C,)`` IoU per class, NaN where the class is absent from both sides."""
        return iou_from_matrix(self.matrix)

    def miou(self) -> float:
        return _nanmean(self.iou())

    def pixel_accuracy(self) -> float:
        """Correct pixels / evaluated (non-ignored) pixels."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """``(C,)`` recall per class, NaN where the class is absent from the ground truth."""
        rows = self.matrix.sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(rows > 0, np.diag(self.matrix) / np.where(rows > 0, rows, 1), np.nan)

    def summary(self, class_names: Optional[Sequence[str]] = None) -> Dict:
        """Every figure as plain Python types (NaN becomes ``None`` so JSON stays valid)."""
        names = list(class_names) if class_names is not None else [
            str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes")
        iou = self.iou()
        acc = self.class_accuracy()
        return {
            "miou": _json_float(self.miou()),
            "pixel_accuracy": _json_float(self.pixel_accuracy()),
            "mean_class_accuracy": _json_float(_nanmean(acc)),
            "evaluated_pixels": self.total_pixels,
            "per_class": {
                name: {
                    "iou": _json_float(iou[i]),
                    "accuracy": _json_float(acc[i]),
                    "gt_pixels": int(self.matrix[i].sum()),
                    "predicted_pixels": int(self.matrix[:, i].sum()),
                }
                for i, name in enumerate(names)
            },
            "confusion_matrix": self.matrix.tolist(),
        }


def _json_float(value: float) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value


class LatencyStats:
    """Collects per-frame durations (milliseconds) under named stages."""

    PERCENTILES = (50, 90, 99)

    def __init__(self) -> None:
        self.samples: Dict[str, List[float]] = {}

    def add(self, stage: str, ms: float) -> None:
        self.samples.setdefault(stage, []).append(float(ms))

    def add_all(self, timings: Dict[str, float]) -> None:
        for stage, ms in timings.items():
            self.add(stage, ms)

    def summary(self) -> Dict[str, Dict[str, float]]:
        """``{stage: {count, mean, min, max, p50, p90, p99}}`` in milliseconds."""
        return {stage: summarize_times(values, self.PERCENTILES)
                for stage, values in self.samples.items() if values}


def predictions_miou(predictions: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    """mIoU (0..1) of ``(N, H, W)`` predicted against true ids by the one rule (255
    ignored): the int8 accuracy check's metric, given to the inference layer."""
    cm = ConfusionMatrix(num_classes)
    for pred, gt in zip(predictions, truth):
        cm.update(pred, gt)
    return cm.miou()
