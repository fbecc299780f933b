"""The evaluation report: one builder for offline and live runs; JSON, Markdown, plots.

Files written into the output folder:

- ``report.json``: the report dict of :func:`build_report` (every figure).
- ``report.md``: the headline figures, per-class IoU and latency tables, the plots.
- ``per_class_iou.png``, ``latency_histogram.png``, ``overlay_strip.png`` (see
  :mod:`.plots`).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
from pathlib import Path
from typing import Dict, List, Optional

from .accumulator import FrameAccumulator
from .plots import plot_iou, plot_latency

__all__ = ["build_report", "bag_section", "write_report", "format_headline", "PLOTS"]

PLOTS = ("per_class_iou.png", "latency_histogram.png", "overlay_strip.png")

log = logging.getLogger(__name__)


def bag_section(path, image_topic: Optional[str], image_type: str, truth) -> Dict:
    """The report's ``bag`` entry: what was read, and where the ground truth came from."""
    return {"path": str(path), "image_topic": image_topic, "image_type": image_type,
            "ground_truth": truth.description if truth is not None else "none"}


def build_report(run: FrameAccumulator, *, tool: str, status: str, detail: str, bag: Dict,
                 model: Dict, processed: int, throughput: Dict, live: Optional[Dict] = None,
                 outputs: Optional[Dict] = None) -> Dict:
    """The report dict of one evaluation (offline or live), ready for :func:`write_report`.

    Args:
        run: what the evaluation accumulated.
        tool: the command, e.g. ``"mfaranet eval-bag"``.
        status: ``complete``, ``interrupted`` or ``failed``; ``detail`` says why.
        bag: :func:`bag_section`. ``model``: what segmented the frames.
        processed: frames segmented (live: frames whose labels came back).
        throughput: frame rates (offline: Segmenter and pipeline; live: output rate).
        live: the live path's frame counts (sent, segmented, dropped), if live.
        outputs: files written besides the report (the output bag).
    """
    report = {
        "tool": tool,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "status_detail": detail,
        "bag": bag,
        "model": model,
        "frames": {"processed": processed, "with_ground_truth": run.with_gt,
                   "without_ground_truth": processed - run.with_gt},
        "accuracy": run.accuracy(),
        "latency_ms": run.latency.summary(),
        "throughput": throughput,
    }
    if live is not None:
        report["live"] = live
    report["outputs"] = dict(outputs or {})
    report["per_frame"] = run.per_frame
    return report


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


def _fmt(v: Optional[float], pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.1f}"


def _md_status(report: Dict) -> List[str]:
    lines = [f"# Evaluation of `{report['bag']['path']}`", ""]
    status = report.get("status", "complete")
    if status != "complete":
        lines += [f"> **{status.upper()}**: {report.get('status_detail', '')} "
                  f"The figures cover the frames processed so far.", ""]
    return lines + [f"**{format_headline(report)}**", ""]


def _md_model_rows(report: Dict) -> List[str]:
    model, live = report["model"], report.get("live")
    if live:
        on = f" on {model['device']}" if model.get("device") else ""
        return [f"| node | `{live['node']}`{on} |",
                f"| live | {live['frames_sent']} frames seen on the input, "
                f"{live['frames_segmented']} segmented, {live['dropped']} dropped "
                f"({100 * live['drop_rate']:.1f} %), output {live['output_fps']:.2f} FPS |"]
    size = model.get("input_size")
    network = f"{size[0]}x{size[1]}" if size else "full resolution"
    reason = f" ({model['input_size_reason']})" if model.get("input_size_reason") else ""
    return [f"| model | `{model.get('weights', '')}` ({model.get('source', '')}) |",
            f"| backend | {model.get('backend', '')} on {model.get('device', '')}, network "
            f"input {network}{reason} |"]


def _md_summary_table(report: Dict) -> List[str]:
    bag, frames = report["bag"], report["frames"]
    lines = ["| | |", "| --- | --- |",
             f"| image topic | `{bag['image_topic']}` ({bag.get('image_type', '')}) |",
             f"| ground truth | {bag.get('ground_truth', 'none')} |",
             f"| frames | {frames['processed']} processed, {frames['with_ground_truth']} with "
             f"ground truth |"]
    lines += _md_model_rows(report)
    thr = report.get("throughput", {})
    if "segmenter_fps" in thr:
        lines.append(f"| throughput | {thr['segmenter_fps']:.2f} FPS in the Segmenter, "
                     f"{thr['pipeline_fps']:.2f} FPS with bag reading and writing |")
    return lines + [""]


def _md_accuracy(acc: Optional[Dict]) -> List[str]:
    if not acc:
        return []
    lines = ["## Accuracy", "",
             f"mIoU **{_fmt(acc['miou'])} %**, pixel accuracy {_fmt(acc['pixel_accuracy'])} %, "
             f"mean class accuracy {_fmt(acc['mean_class_accuracy'])} % over "
             f"{acc['evaluated_pixels']} pixels (Cityscapes definitions; classes absent from "
             f"both ground truth and prediction are left out of the mean).", "",
             "| class | IoU % | accuracy % | GT pixels |", "| --- | ---: | ---: | ---: |"]
    for name, c in acc["per_class"].items():
        lines.append(f"| {name} | {_fmt(c['iou'])} | {_fmt(c['accuracy'])} | "
                     f"{c['gt_pixels']} |")
    return lines + [""]


def _md_latency(lat: Dict) -> List[str]:
    if not lat:
        return []
    lines = ["## Latency (ms per frame)", "", "| stage | p50 | p90 | p99 | mean | max |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for stage, s in lat.items():
        lines.append(f"| {stage} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | "
                     f"{s['mean']:.1f} | {s['max']:.1f} |")
    return lines + [""]


def _md_plots(images: Dict[str, str]) -> List[str]:
    if not images:
        return []
    lines = ["## Plots", ""]
    for title, name in images.items():
        lines += [f"### {title}", "", f"![{title}]({name})", ""]
    return lines


def _md_output_bag(outputs: Dict) -> List[str]:
    if not outputs.get("bag"):
        return []
    lines = ["## Output bag", "",
             f"`{outputs['bag']}` (rosbag2, MCAP) holds the input images and, at the same "
             f"timestamps, the labels, colour mask, overlay and per-frame latency:", ""]
    lines += [f"- `{t}` ({typ})" for t, typ in outputs.get("bag_topics", {}).items()]
    return lines + ["", f"Open `{outputs.get('mcap', outputs['bag'])}` in Foxglove, or replay "
                        f"it for RViz with `ros2 bag play {outputs['bag']}`.", ""]


def _markdown(report: Dict, images: Dict[str, str]) -> str:
    lines = (_md_status(report) + _md_summary_table(report)
             + _md_accuracy(report.get("accuracy")) + _md_latency(report.get("latency_ms", {}))
             + _md_plots(images) + _md_output_bag(report.get("outputs", {})))
    return "\n".join(lines)


def _draw_plots(report: Dict, out: Path, run: FrameAccumulator,
                strip_caption: str) -> Dict[str, str]:
    """Writes the plots this run can draw; returns ``{title: file name}``."""
    for stale in PLOTS:   # a plot this run cannot draw must not survive from an earlier one
        (out / stale).unlink(missing_ok=True)
    images: Dict[str, str] = {}
    if plot_iou(report.get("accuracy"), run.palette, out / "per_class_iou.png"):
        images["Per-class IoU"] = "per_class_iou.png"
    if plot_latency(run.latency.samples, out / "latency_histogram.png"):
        images["Latency"] = "latency_histogram.png"
    picture = run.strip.render()
    if picture is not None:
        import cv2

        cv2.imwrite(str(out / "overlay_strip.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        images[f"Overlays{(': ' + strip_caption) if strip_caption else ''}"] = \
            "overlay_strip.png"
    return images


def write_report(report: Dict, out_dir, run: FrameAccumulator, *,
                 strip_caption: str = "overlay | ground truth") -> Dict[str, str]:
    """Writes report.json, report.md and the plots; returns ``{file name: path}``.

    Each text file is written to a temporary name and renamed, so an interrupted write
    never leaves a half-written report behind.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = _draw_plots(report, out, run, strip_caption)
    written = {name: str(out / name) for name in images.values()}
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
