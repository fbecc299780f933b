"""The evaluation report: JSON (every figure), Markdown, and PNG plots.

Files written into the output folder:

- ``report.json``: the report dict as built by the evaluation (see ``offline.py``).
- ``report.md``: the headline figures, per-class IoU and latency tables, the plots.
- ``per_class_iou.png``: one bar per class, in the class's palette colour.
- ``latency_histogram.png``: per-frame latency distribution with p50 / p90 / p99.
- ``overlay_strip.png``: evenly spaced frames, overlay next to the ground truth.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["ThumbnailStrip", "write_report", "format_headline", "PLOTS"]

PLOTS = ("per_class_iou.png", "latency_histogram.png", "overlay_strip.png")

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------------------- figures

def format_headline(report: Dict) -> str:
    """``mIoU 61.2 %, pixel accuracy 93.0 %, 12.3 FPS (...)`` from a report dict."""
    parts = []
    acc = report.get("accuracy")
    if not report.get("frames", {}).get("processed"):
        parts.append("no frame evaluated")
    elif acc and acc.get("miou") is not None:
        parts.append(f"mIoU {100 * acc['miou']:.1f} %")
        parts.append(f"pixel accuracy {100 * acc['pixel_accuracy']:.1f} %")
    else:
        parts.append("no ground truth: accuracy not measured")
    thr = report.get("throughput", {})
    if thr.get("segmenter_fps"):
        parts.append(f"{thr['segmenter_fps']:.1f} FPS through the Segmenter")
    live = report.get("live")
    if live:
        e2e = report.get("latency_ms", {}).get("end_to_end")
        if e2e:
            parts.append(f"end-to-end p50 {e2e['p50']:.0f} ms")
        parts.append(f"{live['dropped']} of {live['frames_sent']} frames dropped")
    return ", ".join(parts)


def _plot_iou(report: Dict, palette: Sequence[Sequence[int]], path: Path) -> bool:
    acc = report.get("accuracy")
    if not acc:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def _plot_latency(samples: Dict[str, List[float]], path: Path) -> bool:
    main = "end_to_end" if samples.get("end_to_end") else "total"
    values = samples.get(main)
    if not values:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = np.asarray(values)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(arr, bins=min(40, max(5, arr.size // 3)), color="#4c72b0", alpha=0.85,
            label=f"{main.replace('_', '-')} ({arr.size} frames)")
    for p, style in ((50, "-"), (90, "--"), (99, ":")):
        v = float(np.percentile(arr, p))
        ax.axvline(v, color="black", linestyle=style, linewidth=1, label=f"p{p} {v:.1f} ms")
    ax.set_xlabel("latency per frame (ms)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    ax.set_title("Latency per frame")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _fmt(v: Optional[float], pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.1f}"


def _markdown(report: Dict, images: Dict[str, str]) -> str:
    lines = [f"# Evaluation of `{report['bag']['path']}`", ""]
    status = report.get("status", "complete")
    if status != "complete":
        lines += [f"> **{status.upper()}**: {report.get('status_detail', '')} "
                  f"The figures cover the frames processed so far.", ""]
    lines += [f"**{format_headline(report)}**", ""]
    bag, model, frames = report["bag"], report["model"], report["frames"]
    lines += [
        "| | |", "| --- | --- |",
        f"| image topic | `{bag['image_topic']}` ({bag.get('image_type', '')}) |",
        f"| ground truth | {bag.get('ground_truth', 'none')} |",
        f"| frames | {frames['processed']} processed, {frames['with_ground_truth']} with "
        f"ground truth |",
    ]
    live = report.get("live")
    if live:
        lines += [
            f"| node | `{live['node']}`" + (f" on {model['device']}" if model.get("device")
                                           else "") + " |",
            f"| live | {live['frames_sent']} frames seen on the input, "
            f"{live['frames_segmented']} segmented, {live['dropped']} dropped "
            f"({100 * live['drop_rate']:.1f} %), output {live['output_fps']:.2f} FPS |"]
    else:
        size = model.get("input_size")
        lines += [
            f"| model | `{model.get('weights', '')}` ({model.get('source', '')}) |",
            f"| backend | {model.get('backend', '')} on {model.get('device', '')}, network "
            f"input {f'{size[0]}x{size[1]}' if size else 'full resolution'} |"]
    thr = report.get("throughput", {})
    if "segmenter_fps" in thr:
        lines.append(f"| throughput | {thr['segmenter_fps']:.2f} FPS in the Segmenter, "
                     f"{thr['pipeline_fps']:.2f} FPS with bag reading and writing |")
    lines.append("")
    acc = report.get("accuracy")
    if acc:
        lines += ["## Accuracy", "",
                  f"mIoU **{_fmt(acc['miou'])} %**, "
                  f"pixel accuracy {_fmt(acc['pixel_accuracy'])} %, "
                  f"mean class accuracy {_fmt(acc['mean_class_accuracy'])} % over "
                  f"{acc['evaluated_pixels']} pixels (Cityscapes definitions; classes absent "
                  f"from both ground truth and prediction are left out of the mean).", "",
                  "| class | IoU % | accuracy % | GT pixels |", "| --- | ---: | ---: | ---: |"]
        for name, c in acc["per_class"].items():
            lines.append(f"| {name} | {_fmt(c['iou'])} | {_fmt(c['accuracy'])} | "
                         f"{c['gt_pixels']} |")
        lines.append("")
    lat = report.get("latency_ms", {})
    if lat:
        lines += ["## Latency (ms per frame)", "",
                  "| stage | p50 | p90 | p99 | mean | max |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for stage, s in lat.items():
            lines.append(f"| {stage} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | "
                         f"{s['mean']:.1f} | {s['max']:.1f} |")
        lines.append("")
    if images:
        lines += ["## Plots", ""]
        for title, name in images.items():
            lines += [f"### {title}", "", f"![{title}]({name})", ""]
    outputs = report.get("outputs", {})
    if outputs.get("bag"):
        lines += ["## Output bag", "",
                  f"`{outputs['bag']}` (rosbag2, MCAP) holds the input images and, at the same "
                  f"timestamps, the labels, colour mask, overlay and per-frame latency:", ""]
        lines += [f"- `{t}` ({typ})" for t, typ in outputs.get("bag_topics", {}).items()]
        lines += ["", f"Open `{outputs.get('mcap', outputs['bag'])}` in Foxglove, or replay it "
                  f"for RViz with `ros2 bag play {outputs['bag']}`.", ""]
    return "\n".join(lines)


def write_report(report: Dict, out_dir, *, latency_samples: Dict[str, List[float]],
                 palette: Sequence[Sequence[int]], strip: Optional[ThumbnailStrip] = None,
                 strip_caption: str = "") -> Dict[str, str]:
    """Writes report.json, report.md and the plots; returns ``{kind: path}``.

    Each file is written to a temporary name and renamed, so an interrupted write never
    leaves a half-written report behind.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in PLOTS:   # a plot this run cannot draw must not survive from an earlier one
        (out / stale).unlink(missing_ok=True)
    written: Dict[str, str] = {}
    images: Dict[str, str] = {}
    if _plot_iou(report, palette, out / "per_class_iou.png"):
        images["Per-class IoU"] = "per_class_iou.png"
    if _plot_latency(latency_samples, out / "latency_histogram.png"):
        images["Latency"] = "latency_histogram.png"
    if strip is not None:
        picture = strip.render()
        if picture is not None:
            import cv2

            cv2.imwrite(str(out / "overlay_strip.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            images[f"Overlays{(': ' + strip_caption) if strip_caption else ''}"] = \
                "overlay_strip.png"
    for name in images.values():
        written[name] = str(out / name)
    report.setdefault("outputs", {})["plots"] = [str(out / n) for n in images.values()]
    report["outputs"]["report_json"] = str(out / "report.json")
    report["outputs"]["report_md"] = str(out / "report.md")
    for name, text in (("report.json", json.dumps(report, indent=2, allow_nan=False) + "\n"),
                       ("report.md", _markdown(report, images))):
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
        written[name] = str(out / name)
    return written
