"""``eval-weights``: a checkpoint's accuracy on image/label pairs, through the Segmenter.

The frames go through :class:`~mfaranet_ros.inference.Segmenter` like every other
consumer's (its letterbox, its backend, its label restoration), and the figures follow
the one metric of :mod:`.metrics` (Cityscapes' rule). The pairs are generated street
scenes (``--frames --size --seed``) or a folder as ``mfaranet synth`` writes one.
"""
from __future__ import annotations

from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np

from .metrics import ConfusionMatrix

__all__ = ["generated_pairs", "folder_pairs", "confusion_over_pairs", "weights_report",
           "format_weights_report"]

Pair = Tuple[np.ndarray, np.ndarray]   # (H, W, 3) uint8 RGB, (H, W) uint8 trainIds


def generated_pairs(frames: int, size: Tuple[int, int], seed: int) -> Iterator[Pair]:
    """Generated scene ``i`` of ``range(frames)``: ``generate_scene(frame_seed(seed, i))``."""
    from mfaranet_ros.synthetic import frame_seed, generate_scene

    for i in range(frames):
        yield generate_scene(frame_seed(seed, i), size)


def folder_pairs(root: str, limit: Optional[int] = None) -> Iterator[Pair]:
    """``root/images/*.png`` with ``root/labels/*.png`` of the same names (``synth``'s).

    The folder is listed at once (a missing image or label raises FileNotFoundError
    here, before any model is loaded); the PNGs are read one by one.
    """
    from .folders import folder_files, read_label, read_rgb

    pairs = folder_files(root, limit)
    return ((read_rgb(image), read_label(label)) for image, label in pairs)


def confusion_over_pairs(segmenter, pairs: Iterable[Pair], *, bgr: bool = False,
                         batch: int = 1) -> ConfusionMatrix:
    """The confusion matrix of the Segmenter's labels against the pairs' labels.

    ``bgr=True`` feeds the channels reversed (a check that colour order matters);
    ``batch`` frames go through one ``segment_batch`` call.
    """
    meta = segmenter.metadata
    cm = ConfusionMatrix(len(meta.class_names), getattr(meta, "ignore_index", 255))
    frames, labels = [], []

    def flush() -> None:
        results = segmenter.segment_batch(frames, color=False, overlay=False)
        for result, truth in zip(results, labels):
            cm.update(result.labels, truth)
        frames.clear()
        labels.clear()

    for rgb, truth in pairs:
        frames.append(np.ascontiguousarray(rgb[..., ::-1]) if bgr else rgb)
        labels.append(truth)
        if len(frames) >= batch:
            flush()
    if frames:
        flush()
    return cm


def weights_report(cm: ConfusionMatrix, class_names: Sequence[str], *, checkpoint: str,
                   data: str, input_size, input_size_reason: str, bgr: bool) -> Dict:
    """The figures of one ``eval-weights`` run as plain JSON types."""
    summary = cm.summary(class_names)
    per_class = {n: c["iou"] for n, c in summary["per_class"].items()}
    return {
        "checkpoint": checkpoint,
        "data": data,
        "input_size": list(input_size) if input_size else None,
        "input_size_reason": input_size_reason,
        "channel_order": "BGR (deliberately wrong)" if bgr else "RGB",
        "metric": "Cityscapes: a class counts unless absent from both ground truth and "
                  "prediction",
        "miou": summary["miou"],
        "pixel_accuracy": summary["pixel_accuracy"],
        "classes_in_mean": sum(v is not None for v in per_class.values()),
        "per_class": per_class,
        "absent_classes_excluded": [n for n, v in per_class.items() if v is None],
    }


def format_weights_report(report: Dict) -> str:
    """The human-readable table ``eval-weights`` prints without ``--json``."""
    size = report["input_size"]
    lines = [f"{report['data']}, input {f'{size[0]}x{size[1]}' if size else 'full resolution'}"
             f" ({report['input_size_reason']}), {report['channel_order']}"]
    for name, value in report["per_class"].items():
        lines.append(f"  {name:14s} {'absent' if value is None else f'{100 * value:6.2f}'}")
    miou = report["miou"]
    lines.append(f"  {'mIoU':14s} {'n/a' if miou is None else f'{100 * miou:6.2f}'}  "
                 f"(over {report['classes_in_mean']} classes; pixel accuracy "
                 f"{100 * (report['pixel_accuracy'] or 0):.2f} %)")
    return "\n".join(lines)
