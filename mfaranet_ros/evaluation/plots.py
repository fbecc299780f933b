"""The report's pictures: per-class IoU bars, the latency histogram, the overlay strip.

Matplotlib is imported inside the functions and set to its file-only backend (Agg), so
no display is needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..timing import summarize_times

__all__ = ["ThumbnailStrip", "plot_iou", "plot_latency"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class ThumbnailStrip:
    """Keeps small copies of frames, evenly thinned, for the overlay strip.

    Holds at most ``2 * keep`` thumbnails whatever the number of frames: when full, every
    other one is dropped and the sampling stride doubles.
    """

    def __init__(self, keep: int = 6, width: int = 320) -> None:
        self.keep = keep
        self.width = width
        self.stride = 1
        self.items: List[Tuple[int, List[np.ndarray]]] = []

    def _small(self, image: np.ndarray) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        if w <= self.width:
            return image.copy()
        size = (self.width, max(1, round(h * self.width / w)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def wants(self, index: int) -> bool:
        return index % self.stride == 0

    def add(self, index: int, images: Sequence[np.ndarray]) -> None:
        if not self.wants(index):
            return
        self.items.append((index, [self._small(im) for im in images]))
        if len(self.items) >= 2 * self.keep:
            self.stride *= 2
            self.items = [item for item in self.items if item[0] % self.stride == 0]

    def render(self) -> Optional[np.ndarray]:
        """One RGB image: a row per chosen frame, its images side by side."""
        if not self.items:
            return None
        picks = np.unique(np.linspace(0, len(self.items) - 1, min(self.keep, len(self.items)))
                          .round().astype(int))
        rows = []
        gap = 4
        for i in picks:
            tiles = self.items[i][1]
            h = max(t.shape[0] for t in tiles)
            row = []
            for t in tiles:
                t = t if t.ndim == 3 else np.repeat(t[:, :, None], 3, axis=2)
                pad = np.full((h, t.shape[1] + gap, 3), 255, np.uint8)
                pad[: t.shape[0], : t.shape[1]] = t
                row.append(pad)
            rows.append(np.concatenate(row, axis=1))
        width = max(r.shape[1] for r in rows)
        out = []
        for r in rows:
            padded = np.full((r.shape[0] + gap, width, 3), 255, np.uint8)
            padded[: r.shape[0], : r.shape[1]] = r
            out.append(padded)
        return np.concatenate(out, axis=0)



def plot_iou(accuracy: Optional[Dict], palette: Sequence[Sequence[int]], path: Path) -> bool:
    """Bars of per-class IoU in the classes' colours; False when there is no accuracy
    (no ground truth, or none of it scored: the mIoU is then absent)."""
    acc = accuracy
    if not acc or acc.get("miou") is None:
        return False
    plt = _pyplot()

    names = list(acc["per_class"])
    values = [acc["per_class"][n]["iou"] for n in names]
    colors = [tuple(c / 255 for c in palette[i]) if i < len(palette) else (0.5, 0.5, 0.5)
              for i in range(len(names))]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(names) + 1.4))
    y = np.arange(len(names))
    ax.barh(y, [100 * v if v is not None else 0 for v in values], color=colors,
            edgecolor="black", linewidth=0.5)
    for yi, v in zip(y, values):
        ax.text(100 * v + 1 if v is not None else 1, yi,
                f"{100 * v:.1f}" if v is not None else "n/a (absent)", va="center", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("IoU (%)")
    ax.axvline(100 * acc["miou"], color="black", linestyle="--", linewidth=1)
    ax.set_title(f"Per-class IoU (mIoU {100 * acc['miou']:.1f} %, dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_latency(samples: Dict[str, List[float]], path: Path) -> bool:
    """Histogram of end-to-end (live) or total (offline) latency with p50/p90/p99."""
    main = "end_to_end" if samples.get("end_to_end") else "total"
    values = samples.get(main)
    if not values:
        return False
    plt = _pyplot()

    arr = np.asarray(values)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(arr, bins=min(40, max(5, arr.size // 3)), color="#4c72b0", alpha=0.85,
            label=f"{main.replace('_', '-')} ({arr.size} frames)")
    summary = summarize_times(arr, (50, 90, 99))
    for p, style in ((50, "-"), (90, "--"), (99, ":")):
        v = summary[f"p{p}"]
        ax.axvline(v, color="black", linestyle=style, linewidth=1, label=f"p{p} {v:.1f} ms")
    ax.set_xlabel("latency per frame (ms)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    ax.set_title("Latency per frame")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

