"""``mfaranet demo``: the README's main command.

Generates (once) a synthetic driving bag with ground truth, evaluates it with the demo
weights through the Segmenter, and writes ``out/demo/``: the report (Markdown, JSON,
plots) and the output bag (MCAP) with the segmentation at the input's timestamps. Then
prints the headline figures and how to watch the result.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Dict, Optional

log = logging.getLogger(__name__)

#: Scene seed of the demo drive. The demo weights' recipe (config/train_synthetic.yaml)
#: trains on seed 0 and validates on seed 999 (``eval-weights`` defaults to 1000);
#: frame_seed() keeps seed 2000 apart from all of them, so the demo never evaluates on
#: a frame the weights were trained or selected on.
DEMO_SEED = 2000


def _find_weights(requested: Optional[str]) -> str:
    """The demo weights; else the newest checkpoint in models/ (said so, loudly)."""
    from mfaranet_ros.model.weights import DEFAULT_WEIGHTS, package_models_dir, resolve_weights

    path = resolve_weights(requested or DEFAULT_WEIGHTS)
    if os.path.isfile(path) or requested:
        return path
    others = sorted(glob.glob(os.path.join(package_models_dir(), "*.pth")),
                    key=os.path.getmtime, reverse=True)
    if others:
        log.warning("demo weights %s not found; using %s instead", path, others[0])
        return others[0]
    raise SystemExit(
        f"error: no weights: {path} is missing and models/ holds no .pth checkpoint.\n"
        f"Train the demo weights (mfaranet train ...) or pass --weights FILE.")


def _ensure_bag(bag: Path, spec, regenerate: bool, progress: bool = True) -> Dict:
    """The synthetic bag of ``spec`` at ``bag``, generated only if missing or different."""
    from mfaranet_ros.evaluation.bags import BagError, BagReader
    from mfaranet_ros.evaluation.synthbag import make_synthetic_bag

    sidecar = bag.with_name(bag.name + ".json")
    if bag.exists() and sidecar.exists() and not regenerate:
        try:
            summary = json.loads(sidecar.read_text())
            if summary.get("spec") == spec.to_dict():
                with BagReader(bag) as reader:   # still readable and complete?
                    if reader.message_count(summary["image_topic"]) == spec.frames:
                        summary["reused"] = True
                        return summary
        except (ValueError, KeyError, BagError) as exc:
            log.warning("regenerating %s: %s", bag, exc)
    if bag.exists():
        shutil.rmtree(bag)
    bag.parent.mkdir(parents=True, exist_ok=True)
    print(f"Generating the synthetic driving bag {bag} ({spec.frames} frames, "
          f"{spec.size[0]}x{spec.size[1]}, {spec.rate_hz:g} Hz; once) ...", flush=True)
    try:
        summary = make_synthetic_bag(bag, spec, progress=progress)
    except BaseException:
        shutil.rmtree(bag, ignore_errors=True)   # never leave half a bag to be reused
        raise
    sidecar.write_text(json.dumps(summary, indent=2) + "\n")
    summary["reused"] = False
    return summary


def _demo(args: argparse.Namespace) -> int:
    from mfaranet_ros.evaluation.model_args import load_segmenter
    from mfaranet_ros.evaluation.offline import EvalOptions, check_inputs, evaluate_bag
    from mfaranet_ros.evaluation.synthbag import SyntheticBagSpec

    t0 = time.perf_counter()
    args.weights_given = args.weights is not None
    spec = SyntheticBagSpec(frames=args.frames, size=args.size, rate_hz=args.rate,
                            seed=args.seed, storage="mcap")
    bag = _ensure_bag(Path(args.bag), spec, args.regenerate, not args.no_progress)
    if bag["reused"]:
        print(f"Using the synthetic driving bag {bag['path']} ({spec.frames} frames, "
              f"{spec.size[0]}x{spec.size[1]})")
    options = EvalOptions(image_topic=bag["image_topic"], label_topic=bag["label_topic"],
                          progress=not args.no_progress)
    check_inputs(bag["path"], options)       # the bag before the model: cheap
    args.weights = _find_weights(args.weights)
    segmenter, weights, reason = load_segmenter(args)
    size = segmenter.input_size
    print(f"Model {weights}: {segmenter.backend_name} on {segmenter.device}, network input "
          f"{f'{size[0]}x{size[1]}' if size else 'full resolution'} ({reason})")
    report = evaluate_bag(bag["path"], args.out, segmenter, options, weights=weights,
                          input_size_reason=reason)
    wall = time.perf_counter() - t0
    _print_summary(report, bag, args, wall)
    return 130 if report["status"] == "interrupted" else 0


def _print_summary(report: Dict, bag: Dict, args: argparse.Namespace, wall: float) -> None:
    from mfaranet_ros.evaluation.report import format_headline

    out = Path(args.out)
    size = report["model"]["input_size"]
    node_args = f" -p weights:={report['model']['weights']}" if args.weights_given else ""
    if size:
        node_args += f" -p \"input_size:=[{size[0]},{size[1]}]\""
    lat = report["latency_ms"].get("total", {})
    outputs = report["outputs"]
    status = "" if report["status"] == "complete" else f" ({report['status'].upper()}: partial)"
    lines = [
        "",
        f"MFARANet demo{status}: {report['frames']['processed']} frames in {wall:.0f} s",
        f"  {format_headline(report)}",
    ]
    if lat:
        lines.append(f"  latency per frame: p50 {lat['p50']:.0f} ms, p90 {lat['p90']:.0f} ms, "
                     f"p99 {lat['p99']:.0f} ms ({report['model']['backend']} on "
                     f"{report['model']['device']})")
    lines += [
        "",
        f"Results in {out}/:",
        "  report.md, report.json       per-class IoU, confusion matrix, latency p50/p90/p99",
        "  per_class_iou.png, latency_histogram.png, overlay_strip.png",
    ]
    if outputs.get("bag"):
        lines.append(f"  {Path(outputs['bag']).name}/  output bag (MCAP): the input and "
                     f"labels, color, overlay, latency at its timestamps")
    lines += [
        "",
        "Watch it:",
        f"  Foxglove: open {outputs.get('mcap', '')} and add Image panels on "
        f"/mfaranet/overlay and {bag['image_topic']}",
        f"  RViz:     ros2 bag play {outputs.get('bag', '')} --loop   and   "
        f"rviz2 -d config/mfaranet.rviz   (Overlay and Color displays)",
        "  Live, with the node (three terminals):",
        f"    segmentation_node --ros-args -r image:={bag['image_topic']}{node_args}",
        f"    mfaranet eval-bag {bag['path']} --live --label-topic {bag['label_topic']} "
        f"--out {out}_live",
        f"    mfaranet play-bag {bag['path']}",
    ]
    print("\n".join(lines))


def register(sub: argparse._SubParsersAction) -> None:
    from mfaranet_ros.cli_args import parse_size
    from mfaranet_ros.evaluation.errors import one_line_errors
    from mfaranet_ros.evaluation.model_args import add_segmenter_options

    p = sub.add_parser(
        "demo", help="the demo: synthetic driving bag -> segmentation -> out/demo/",
        description="Generates (once) a synthetic driving bag with ground truth, runs every "
                    "frame through the Segmenter with the demo weights, and writes the "
                    "report and an output bag (MCAP) into --out.")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--bag", default="out/bags/synthetic_drive",
                   help="where the synthetic bag is made / found "
                        "(default: out/bags/synthetic_drive)")
    p.add_argument("--frames", type=int, default=100, help="frames in the bag (default: 100)")
    p.add_argument("--size", type=parse_size, default=(512, 1024), metavar="HxW",
                   help="frame size (default: 512x1024)")
    p.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default: 10)")
    p.add_argument("--seed", type=int, default=DEMO_SEED,
                   help=f"scene seed of the drive (default: {DEMO_SEED}, held out from "
                        f"training)")
    p.add_argument("--regenerate", action="store_true", help="make the bag again")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_segmenter_options(p)
    p.set_defaults(func=one_line_errors(_demo))
