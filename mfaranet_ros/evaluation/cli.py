"""``mfaranet eval-bag``, ``eval-weights``, ``play-bag`` and ``make-bag``.

Every command checks its inputs (bag, topics, ground truth) before it loads a model.
The ROS modules (``play-bag``, ``eval-bag --live``) are imported inside their commands:
the rest runs without ROS.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Dict

from ..cli_args import parse_size, positive_int
from ..names import BACKENDS, PRECISIONS
from .errors import one_line_errors
from .fleet.cli import register as register_fleet
from .model_args import add_input_size_option, add_label_map_option, add_segmenter_options

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- eval-bag

def _live_metadata(weights_arg):
    """Class names and palette for --live: the checkpoint's, or Cityscapes' without one."""
    import os

    from mfaranet_ros.model import read_checkpoint
    from mfaranet_ros.model.weights import resolve_weights

    weights = resolve_weights(weights_arg)
    if weights_arg is None and not os.path.isfile(weights):
        log.info("no checkpoint at %s: using the Cityscapes class table", weights)
        return None
    return read_checkpoint(weights).metadata


def _eval_live(args: argparse.Namespace) -> Dict:
    """``--live``: the ROS layer's evaluation (registered by ``ros/tools/cli.py``, which is
    where rclpy is imported); this layer imports no ROS."""
    from .live import live_evaluation

    return live_evaluation()(args, lambda: _live_metadata(args.weights))


def _eval_offline(args: argparse.Namespace) -> Dict:
    from .model_args import load_cli_label_map, load_segmenter
    from .offline import EvalOptions, check_inputs, evaluate_bag

    options = EvalOptions(
        image_topic=args.image_topic, label_topic=args.label_topic,
        gt_folder=args.gt_folder, gt_match=args.gt_match, gt_ids=args.gt_ids,
        max_frames=args.max_frames, write_bag=not args.no_bag,
        output_namespace=args.namespace, progress=not args.no_progress)
    inputs = check_inputs(args.bag, options)     # before the model: cheap, and fails fast
    log.info("bag %s: %d frames on %s", args.bag, inputs.messages, inputs.image_topic)
    segmenter, weights, reason = load_segmenter(args)
    options.label_map = load_cli_label_map(args.label_map, segmenter.metadata)
    return evaluate_bag(args.bag, args.out, segmenter, options, weights=weights,
                        input_size_reason=reason)


def _eval_bag(args: argparse.Namespace) -> int:
    from .report import format_headline

    if args.live and args.label_map:
        print("error: --label-map is for offline evaluation; with --live, the node's own "
              "label_map parameter decides its labels (live evaluation compares the model's "
              "classes)", file=sys.stderr)
        return 2
    report = _eval_live(args) if args.live else _eval_offline(args)
    print(f"{report['status']}: {report['frames']['processed']} frames; "
          f"{format_headline(report)}")
    print(f"report: {report['outputs']['report_md']} (and report.json, plots)")
    if report["outputs"].get("bag"):
        print(f"output bag: {report['outputs']['bag']}")
    return 130 if report["status"] == "interrupted" else 0


def _register_eval(sub) -> None:
    p = sub.add_parser(
        "eval-bag", help="evaluate the model on a bag (offline, or --live against the node)",
        description="Offline: run every frame of BAG's image topic through the Segmenter, "
                    "write an output bag (MCAP) with labels/color/overlay/latency and a "
                    "report (JSON, Markdown, plots). --live: subscribe to a running node's "
                    "outputs while the bag is played (play-bag or ros2 bag play) and report "
                    "accuracy, end-to-end latency and dropped frames.")
    p.add_argument("bag", help="rosbag2 folder, .mcap / .db3 file, or ROS 1 .bag")
    p.add_argument("--out", required=True, help="output folder for the report and bag")
    p.add_argument("--image-topic", default=None,
                   help="sensor_msgs/Image or CompressedImage topic (default: the only one "
                        "not named .../label*)")
    gt = p.add_argument_group("ground truth (optional)")
    source = gt.add_mutually_exclusive_group()
    source.add_argument("--label-topic", default=None,
                        help="mono8 trainId label topic, matched by header stamp")
    source.add_argument("--gt-folder", default=None, help="folder of label PNGs")
    gt.add_argument("--gt-match", default="auto", choices=("auto", "stamp", "index"),
                    help="match PNGs by the stamp (ns) or frame index in their names")
    gt.add_argument("--gt-ids", default="train", choices=("train", "cityscapes"),
                    help="PNG values: trainIds, or Cityscapes labelIds (mapped to trainIds)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--no-bag", action="store_true", help="do not write the output bag")
    p.add_argument("--namespace", default="/mfaranet",
                   help="output topics' namespace in the output bag (default: /mfaranet)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_segmenter_options(p)
    add_label_map_option(p)
    live = p.add_argument_group("live evaluation (--live)")
    live.add_argument("--live", action="store_true",
                      help="evaluate a running node instead of running the model")
    live.add_argument("--node", default="/mfaranet",
                      help="the node's output namespace (default: /mfaranet)")
    live.add_argument("--duration", type=float, default=None,
                      help="stop after this many seconds")
    live.add_argument("--idle", type=float, default=3.0,
                      help="stop when no frame arrived for this many seconds (default: 3)")
    live.add_argument("--startup-timeout", type=float, default=60.0,
                      help="give up if no frame arrives within this many seconds")
    p.set_defaults(func=one_line_errors(_eval_bag))


# ------------------------------------------------------------------------ eval-weights

def _eval_weights(args: argparse.Namespace) -> int:
    """mIoU of a checkpoint through the Segmenter, on generated scenes or a folder."""
    from .model_args import load_segmenter
    from .weights_eval import (
        confusion_over_pairs,
        folder_pairs,
        format_weights_report,
        generated_pairs,
        weights_report,
    )

    if args.data:       # listed before the model is loaded: a bad folder fails at once
        pairs = folder_pairs(args.data, limit=args.frames)
        described = f"folder {args.data}"
    else:
        pairs = generated_pairs(args.frames, args.size, args.seed)
        described = (f"{args.frames} generated {args.size[0]}x{args.size[1]} frames, "
                     f"seed {args.seed}")
    from tqdm import tqdm

    args.weights = args.checkpoint
    segmenter, weights, reason = load_segmenter(args)
    # A progress bar on a terminal only (disable=None), on stderr: --json stays clean.
    pairs = tqdm(pairs, total=None if args.data else args.frames, unit="frame",
                 desc="eval-weights", disable=None)
    cm = confusion_over_pairs(segmenter, pairs, bgr=args.bgr, batch=args.batch)
    report = weights_report(cm, segmenter.metadata.class_names, checkpoint=args.checkpoint,
                            data=described, input_size=segmenter.input_size,
                            input_size_reason=reason, bgr=args.bgr)
    print(json.dumps(report, indent=2) if args.json else format_weights_report(report))
    if args.write_to:
        _write_with_metrics(args, report)
    return 0


def _write_with_metrics(args: argparse.Namespace, report: Dict) -> None:
    """``--write-to``: the weights saved again with these figures in their metadata."""
    from mfaranet_ros.model import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(args.checkpoint, return_metadata=True)
    meta.input_size = report["input_size"]
    meta.metrics = {"heldout_miou": report["miou"],
                    **{f"iou/{n}": v for n, v in report["per_class"].items() if v is not None}}
    if args.source:
        meta.source = args.source
    model.train(False)
    save_checkpoint(args.write_to, model, meta, half=args.half)
    # stderr: with --json, stdout holds nothing but the JSON document
    print(f"wrote {args.write_to} (metrics in its metadata)", file=sys.stderr)


def _register_eval_weights(sub) -> None:
    p = sub.add_parser("eval-weights",
                       help="mIoU of a checkpoint on generated scenes or an image/label folder",
                       description="Runs image/label pairs through the Segmenter and reports "
                                   "per-class IoU and mIoU by Cityscapes' rule (a class "
                                   "counts unless absent from both ground truth and "
                                   "prediction).")
    p.add_argument("checkpoint")
    p.add_argument("--data", help="folder with images/ and labels/ (default: generate scenes)")
    p.add_argument("--frames", type=positive_int, default=100,
                   help="frames to generate (with --data: at most this many; default 100)")
    p.add_argument("--size", type=parse_size, default=(512, 1024), metavar="HxW",
                   help="generated frame size (default 512x1024)")
    p.add_argument("--seed", type=int, default=1000, help="seed of the generated held-out set")
    model = p.add_argument_group("model")
    add_input_size_option(model)
    model.add_argument("--backend", default="torch", choices=BACKENDS,
                       help="Segmenter backend (default: torch, the reference)")
    model.add_argument("--device", default="",
                       help="cpu, cuda, cuda:N (default: CUDA if present)")
    model.add_argument("--precision", default="fp32", choices=PRECISIONS)
    model.add_argument("--batch", type=positive_int, default=1,
                       help="frames per Segmenter call")
    p.add_argument("--bgr", action="store_true", help="feed BGR instead of RGB (a sanity check)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--write-to", help="save the weights with these metrics in their metadata")
    p.add_argument("--half", action="store_true", help="with --write-to: store fp16")
    p.add_argument("--source", help="with --write-to: the metadata's source text")
    p.set_defaults(func=one_line_errors(_eval_weights), pruned=False, cache_dir=None)


# --------------------------------------------------------------------------- make-bag

def _make_bag(args: argparse.Namespace) -> int:
    from .synthbag import SyntheticBagSpec, make_synthetic_bag

    spec = SyntheticBagSpec(frames=args.frames, size=args.size, rate_hz=args.rate,
                            seed=args.seed, storage=args.storage, compressed=args.compressed,
                            labels=args.labels)
    summary = make_synthetic_bag(args.out, spec, gt_folder=args.gt_folder,
                                 progress=not args.no_progress)
    print(f"wrote {summary['path']}: {summary['frames']} frames on {summary['image_topic']}"
          + (f", labels on {summary['label_topic']}" if summary["label_topic"] else "")
          + (f", label PNGs in {summary['gt_folder']}" if summary["gt_folder"] else ""))
    return 0


def _register_make(sub) -> None:
    p = sub.add_parser("make-bag", help="write a synthetic driving bag with ground truth")
    p.add_argument("out", help="bag to create (a folder; for --storage ros1 a .bag file)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--size", type=parse_size, default=(512, 1024), metavar="HxW")
    p.add_argument("--rate", type=float, default=10.0, help="frame rate in Hz")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3", "ros1"))
    p.add_argument("--compressed", action="store_true",
                   help="JPEG sensor_msgs/CompressedImage instead of raw rgb8")
    p.add_argument("--labels", default="topic",
                   choices=("topic", "none", "folder-stamp", "folder-index"),
                   help="ground truth: a mono8 topic, nothing, or PNGs in --gt-folder")
    p.add_argument("--gt-folder", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_make_bag)


def register(sub) -> None:
    _register_eval(sub)
    _register_eval_weights(sub)
    _register_make(sub)
    register_fleet(sub)
