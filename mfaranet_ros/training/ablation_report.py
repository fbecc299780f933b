"""The measures and the report of an ablation study: parameters, GFLOPs, latency, mIoU.

``ablation.json`` holds every figure and the provenance (recipe, seeds, package and
library versions, hardware, load); ``ablation.md`` is the table; ``ablation.png`` plots
mIoU against latency, one point per variant (the mean over seeds), its bar spanning the
seeds' lowest to highest mIoU.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ..timing import summarize_times
from .config import config_to_dict
from .study import Run, Study

__all__ = ["count_gflops", "inference_parameters", "measure_variants", "write_report"]


def inference_parameters(model: torch.nn.Module) -> int:
    """Parameters the deployed graph holds (the training-only boundary heads left out)."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not name.startswith("boundary."))


def count_gflops(model: torch.nn.Module, input_size: Sequence[int]) -> float:
    """GFLOPs of one eval forward of a ``(1, 3, H, W)`` input, counted by
    ``torch.utils.flop_counter`` (convolutions and matrix products; a multiply-add is 2
    FLOPs; interpolation and grid_sample are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    x = torch.zeros(1, 3, int(input_size[0]), int(input_size[1]))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 1e9


def _latencies(study: Study, checkpoints: Dict[str, str],
               say: Callable[[str], None]) -> Dict[str, Dict]:
    """Median/p90 Segmenter latency per variant, the variants taking turns call by call."""
    from ..inference import Segmenter
    from ..synthetic import frame_seed, generate_scene

    lat = study.latency
    if lat.threads:
        torch.set_num_threads(lat.threads)
    frame, _ = generate_scene(frame_seed(study.evaluate.seed, 0), tuple(lat.input_size))
    segmenters = {name: Segmenter.from_checkpoint(path, backend=lat.backend, device=lat.device,
                                                  input_size=tuple(lat.input_size))
                  for name, path in checkpoints.items()}
    samples: Dict[str, List[float]] = {name: [] for name in segmenters}
    say(f"latency: {lat.warmup} + {lat.iterations} calls per variant on {lat.backend}, "
        f"{lat.input_size[0]}x{lat.input_size[1]}, variants in turn")
    for i in range(lat.warmup + lat.iterations):
        for name, seg in segmenters.items():
            start = time.perf_counter()
            seg.segment(frame, color=False, overlay=False)
            if i >= lat.warmup:
                samples[name].append((time.perf_counter() - start) * 1e3)
    out = {}
    for name, seg in segmenters.items():
        stats = summarize_times(samples[name])
        out[name] = {"median_ms": stats["p50"], "p90_ms": stats["p90"], "mean_ms": stats["mean"],
                     "calls": stats["count"], "backend": seg.describe()}
    return out


def measure_variants(study: Study, runs: Sequence[Run], *, measure_latency: bool = True,
                     say: Callable[[str], None] = print) -> Dict[str, Dict]:
    """Parameters, GFLOPs and (optionally) latency of every variant with a finished run."""
    from ..model import load_checkpoint

    first: Dict[str, str] = {}
    for run in runs:
        first.setdefault(run.variant.name, os.path.join(run.directory, "last.pth"))
    size = study.latency.input_size
    out: Dict[str, Dict] = {}
    for name, path in first.items():
        model = load_checkpoint(path)
        out[name] = {"parameters": inference_parameters(model),
                     "gflops": count_gflops(model, size), "flops_input_size": list(size)}
        del model
    if measure_latency and first:
        for name, figures in _latencies(study, first, say).items():
            out[name]["latency"] = figures
    return out


# ---------------------------------------------------------------------------- provenance

def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _hardware() -> Dict:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": _cpu_name(), "logical_cpus": os.cpu_count(), "gpu": gpu,
            "platform": platform.platform(),
            "load_average_1_5_15": [round(v, 2) for v in load] if load else None}


def _versions() -> Dict:
    from mfaranet_ros import __version__

    versions = {"mfaranet_ros": __version__, "torch": torch.__version__,
                "python": platform.python_version()}
    try:
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return versions


# ------------------------------------------------------------------------------ report

def _variant_rows(study: Study, finished: Sequence[Dict], measures: Dict[str, Dict]) -> List:
    rows = []
    for variant in study.variants:
        mine = [f for f in finished if f["run"].variant.name == variant.name]
        if not mine:
            rows.append({"name": variant.name, "architecture": variant.parts, "runs": []})
            continue
        mious = [f["figures"]["miou"] for f in mine]
        row = {
            "name": variant.name,
            "architecture": variant.parts,
            "runs": [{"seed": f["run"].seed, "miou": f["figures"]["miou"],
                      "pixel_accuracy": f["figures"]["pixel_accuracy"],
                      "train_seconds": f["record"].get("train_seconds"),
                      "checkpoint": os.path.join(f["run"].directory, "last.pth"),
                      "sha256": f["figures"]["sha256"]} for f in mine],
            "miou_mean": statistics.fmean(mious),
            "miou_std": statistics.stdev(mious) if len(mious) > 1 else 0.0,
            "miou_min": min(mious),
            "miou_max": max(mious),
            **measures.get(variant.name, {}),
        }
        rows.append(row)
    ref = next((r for r in rows if r["name"] == study.reference and r["runs"]), None)
    for row in rows:
        if ref is None or not row["runs"]:
            continue
        row["delta_miou"] = row["miou_mean"] - ref["miou_mean"]
        if "latency" in row and "latency" in ref:
            row["latency_ratio"] = row["latency"]["median_ms"] / ref["latency"]["median_ms"]
        if ref.get("gflops"):
            row["gflops_ratio"] = row["gflops"] / ref["gflops"]
    return rows


def write_report(study: Study, runs: Sequence[Run], finished: Sequence[Dict],
                 measures: Dict[str, Dict], *, started: float, interrupted: bool) -> Dict:
    """Writes ``ablation.json``, ``ablation.md`` and ``ablation.png``; returns the JSON."""
    os.makedirs(study.output_dir, exist_ok=True)
    report = {
        "study": os.path.abspath(study.path),
        "complete": len(finished) == len(runs) and not interrupted,
        "runs_finished": len(finished),
        "runs_total": len(runs),
        "reference": study.reference,
        "seeds": study.seeds,
        "recipe": {"base": study.base, "resolved": study.recipe},
        "evaluate": config_to_dict(study.evaluate),
        "latency_protocol": config_to_dict(study.latency),
        "versions": _versions(),
        "hardware": _hardware(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": time.time() - started,
        "variants": _variant_rows(study, finished, measures),
    }
    with open(os.path.join(study.output_dir, "ablation.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(study.output_dir, "ablation.md"), "w", encoding="utf-8") as f:
        f.write(format_markdown(report))
    plot_report(report, os.path.join(study.output_dir, "ablation.png"))
    return report


def _parts(arch: Dict[str, str]) -> str:
    return "/".join(arch[k] for k in ("backbone", "aggregation", "alignment", "fusion"))


def _fmt(value: Optional[float], spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_markdown(report: Dict) -> str:
    """The table and its provenance as Markdown."""
    lines = [f"# Ablation study: {os.path.basename(report['study'])}", ""]
    if not report["complete"]:
        lines += [f"**Incomplete:** {report['runs_finished']} of {report['runs_total']} runs "
                  f"finished.", ""]
    lines += [
        "| variant | backbone/aggregation/alignment/fusion | params (M) | GFLOPs | "
        "latency median ms | mIoU % mean ± sd (min-max) | seeds | Δ mIoU pts | latency x |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["variants"]:
        if not row["runs"]:
            lines.append(f"| {row['name']} | {_parts(row['architecture'])} | not trained "
                         f"| | | | | | |")
            continue
        lat = row.get("latency", {})
        lines.append(
            f"| {row['name']} | {_parts(row['architecture'])} "
            f"| {row['parameters'] / 1e6:.2f} | {row['gflops']:.2f} "
            f"| {_fmt(lat.get('median_ms'), '.1f')} "
            f"| {100 * row['miou_mean']:.1f} ± {100 * row['miou_std']:.1f} "
            f"({100 * row['miou_min']:.1f}-{100 * row['miou_max']:.1f}) "
            f"| {len(row['runs'])} | {_fmt(_scaled(row.get('delta_miou')), '+.1f')} "
            f"| {_fmt(row.get('latency_ratio'), '.2f')} |")
    ev, lp = report["evaluate"], report["latency_protocol"]
    cap = "all" if ev.get("frames") is None else f"the first {ev['frames']}"
    source = ev.get("source", "folder" if ev.get("folder") else "generated")
    if source == "folder":
        held = f"folder {ev['folder']} ({cap} pairs)"
    elif source == "val":
        held = f"the recipe's validation split ({cap} frames)"
    else:
        held = (f"{ev['frames']} generated {ev['size'][0]}x{ev['size'][1]} frames, "
                f"seed {ev['seed']}")
    hw, v = report["hardware"], report["versions"]
    lines += [
        "",
        f"- Reference row: `{report['reference']}`; Δ mIoU in points against it, latency x "
        f"as a ratio of its median.",
        f"- mIoU: the Segmenter (torch backend) on {held}, network input "
        f"{ev['input_size'] or 'the checkpoint size'}, Cityscapes' rule "
        f"(mfaranet_ros.evaluation.metrics), each checkpoint at its last iteration.",
        f"- Latency: Segmenter.segment on one frame, backend {lp['backend']}, input "
        f"{lp['input_size'][0]}x{lp['input_size'][1]}, {lp['warmup']} warm-up + "
        f"{lp['iterations']} calls per variant, variants in turn, torch threads "
        f"{lp['threads'] or 'default'}.",
        f"- GFLOPs: torch.utils.flop_counter at {lp['input_size'][0]}x{lp['input_size'][1]} "
        f"(convolutions and matrix products; grid_sample and interpolation not counted). "
        f"Parameters: the deployed graph (training-only boundary heads left out).",
        f"- Seeds: {report['seeds']}; recipe: base `{report['recipe']['base']}` with the "
        f"study's overrides (ablation.json has it resolved).",
        f"- mfaranet_ros {v['mfaranet_ros']}, torch {v['torch']}, Python {v['python']}; "
        f"{hw['cpu']} ({hw['logical_cpus']} logical CPUs), GPU {hw['gpu'] or 'none'}; "
        f"load average at the end {hw['load_average_1_5_15']}.",
        f"- Started {report['started_utc']}; wall time {report['wall_seconds'] / 60:.1f} min "
        f"(this invocation; runs finished earlier are not retrained).",
        "",
    ]
    return "\n".join(lines)


def _scaled(value: Optional[float]) -> Optional[float]:
    return None if value is None else 100 * value


def plot_report(report: Dict, path: str) -> None:
    """mIoU against latency, one point per variant, the seeds' range as a vertical bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    plotted = 0
    for row in report["variants"]:
        if not row["runs"] or "latency" not in row:
            continue
        x = row["latency"]["median_ms"]
        y = 100 * row["miou_mean"]
        err = [[y - 100 * row["miou_min"]], [100 * row["miou_max"] - y]]
        ax.errorbar([x], [y], yerr=err, fmt="o", capsize=4)
        for run in row["runs"]:
            ax.plot([x], [100 * run["miou"]], ".", color="grey", alpha=0.6)
        ax.annotate(row["name"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        plotted += 1
    ax.set_xlabel(f"latency, median ms ({report['latency_protocol']['backend']})")
    ax.set_ylabel("held-out mIoU % (mean; bar: seeds' range, dots: seeds)")
    title = "MFARANet ablation"
    if not report["complete"]:
        title += " (incomplete)"
    if not plotted:
        ax.text(0.5, 0.5, "no variant with both mIoU and latency", ha="center",
                transform=ax.transAxes)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
