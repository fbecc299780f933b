"""What one evaluation gathers frame by frame, offline or live: one class for both paths."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from .metrics import ConfusionMatrix, LatencyStats, iou_from_matrix
from .plots import ThumbnailStrip

__all__ = ["FrameAccumulator"]


class FrameAccumulator:
    """Confusion matrix, latencies, per-frame records and thumbnails of one evaluation.

    Args:
        class_names: the C evaluated classes (trainIds ``0 .. C-1``).
        palette: ``(C, 3)`` RGB colours, for the colour tiles of the strip.
        ignore_index: ground-truth value left out of every figure.
    """

    def __init__(self, class_names: Sequence[str], palette, ignore_index: int = 255) -> None:
        self.class_names = list(class_names)
        self.palette = np.zeros((256, 3), np.uint8)
        self.palette[: len(palette)] = np.asarray(palette, np.uint8)
        self.cm = ConfusionMatrix(len(self.class_names), ignore_index)
        self.latency = LatencyStats()
        self.strip = ThumbnailStrip()
        self.per_frame: List[Dict] = []
        self.with_gt = 0

    @classmethod
    def for_metadata(cls, meta) -> "FrameAccumulator":
        """One for a model's metadata (class names, palette, ignore index)."""
        return cls(meta.class_names, meta.palette, getattr(meta, "ignore_index", 255))

    def add(self, index: int, stamp_ns: int, labels: np.ndarray, gt: Optional[np.ndarray],
            overlay: Optional[np.ndarray], timings: Dict[str, float]) -> None:
        """One frame: ``(H, W)`` uint8 predicted and (optional) true trainIds, the overlay
        for the strip (``None``: the colour mask), stage times in ms."""
        record: Dict = {"index": index, "stamp_ns": stamp_ns,
                        "latency_ms": {k: round(float(v), 3) for k, v in timings.items()}}
        self.latency.add_all(timings)
        if gt is not None:
            record.update(self._frame_accuracy(self.cm.update(labels, gt)))
            self.with_gt += 1
        self.per_frame.append(record)
        if self.strip.wants(index):
            tiles = [overlay if overlay is not None else self.palette[labels]]
            if gt is not None:
                tiles.append(self.palette[gt])
            self.strip.add(index, tiles)

    @staticmethod
    def _frame_accuracy(frame: np.ndarray) -> Dict[str, Optional[float]]:
        """mIoU and pixel accuracy of one frame's own confusion matrix (same rule)."""
        iou = iou_from_matrix(frame)
        defined = iou[~np.isnan(iou)]
        total = frame.sum()
        return {"miou": float(defined.mean()) if defined.size else None,
                "pixel_accuracy": float(np.trace(frame) / total) if total else None}

    @property
    def frames(self) -> int:
        return len(self.per_frame)

    def accuracy(self) -> Optional[Dict]:
        """The accumulated figures (:meth:`ConfusionMatrix.summary`); None without truth."""
        return self.cm.summary(self.class_names) if self.with_gt else None
