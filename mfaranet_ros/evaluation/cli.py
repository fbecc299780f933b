"""``mfaranet eval-bag``, ``mfaranet play-bag`` and ``mfaranet make-bag``."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Tuple

from ..cli_args import parse_size
from ..inference.backends import BACKENDS, PRECISIONS
from ..model.weights import DEFAULT_WEIGHTS, resolve_weights

log = logging.getLogger(__name__)

def parse_input_size(text: str):
    """``--input-size``: ``HxW``, or ``checkpoint`` for the size the weights record."""
    return "checkpoint" if text == "checkpoint" else parse_size(text)


def add_segmenter_options(p: argparse.ArgumentParser) -> None:
    """The node's model parameters, as options (same names, same defaults)."""
    g = p.add_argument_group("model (the node's parameters)")
    g.add_argument("--weights", default=None,
                   help=f"checkpoint; relative paths resolve against the package's models/ "
                        f"(default: {DEFAULT_WEIGHTS})")
    g.add_argument("--backend", default="auto", choices=BACKENDS)
    g.add_argument("--device", default="", help="cpu, cuda, cuda:N (default: CUDA if present)")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS)
    g.add_argument("--input-size", type=parse_input_size, default=None,
                   metavar="HxW|checkpoint",
                   help="network input size; 'checkpoint': the size the weights record "
                        "(default, as the node: every frame at full resolution)")
    g.add_argument("--pruned", action="store_true", help="the pruned network variant")
    g.add_argument("--cache-dir", default=None, help="engine / exported-model cache")


def checkpoint_input_size(weights: str) -> Optional[Tuple[int, int]]:
    """The network input size the checkpoint records (what it was trained at), if any."""
    from mfaranet_ros.model import read_checkpoint

    stored = read_checkpoint(weights).metadata.input_size
    return (int(stored[0]), int(stored[1])) if stored else None


def load_segmenter(args: argparse.Namespace):
    from mfaranet_ros.inference import Segmenter

    weights = resolve_weights(args.weights)
    if not os.path.isfile(weights):
        raise SystemExit(f"error: weights not found: {weights} (pass --weights)")
    size = args.input_size
    if size == "checkpoint":
        size = checkpoint_input_size(weights)
    seg = Segmenter.from_checkpoint(
        weights, backend=args.backend, device=args.device or None, precision=args.precision,
        input_size=size, pruned=args.pruned, cache_dir=args.cache_dir)
    return seg, weights


# --------------------------------------------------------------------------- eval-bag

def _live_metadata(args: argparse.Namespace):
    """Class names and palette for --live: the checkpoint's, or Cityscapes' without one."""
    from mfaranet_ros.model import read_checkpoint

    weights = resolve_weights(args.weights)
    if not os.path.isfile(weights):
        log.info("no checkpoint at %s: using the Cityscapes class table", weights)
        return None
    return read_checkpoint(weights).metadata


def _eval_bag(args: argparse.Namespace) -> int:
    from .bags import BagError
    from .report import format_headline

    if args.live:
        from .live import LiveOptions, evaluate_live

        options = LiveOptions(
            image_topic=args.image_topic, label_topic=args.label_topic,
            gt_folder=args.gt_folder, gt_match=args.gt_match, gt_ids=args.gt_ids,
            node=args.node, duration_s=args.duration, idle_s=args.idle,
            max_frames=args.max_frames, startup_timeout_s=args.startup_timeout)
        try:
            report = evaluate_live(args.bag, args.out, options, metadata=_live_metadata(args))
        except BagError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        from .offline import EvalOptions, evaluate_bag

        options = EvalOptions(
            image_topic=args.image_topic, label_topic=args.label_topic,
            gt_folder=args.gt_folder, gt_match=args.gt_match, gt_ids=args.gt_ids,
            max_frames=args.max_frames, write_bag=not args.no_bag,
            output_namespace=args.namespace, progress=not args.no_progress)
        try:
            segmenter, weights = load_segmenter(args)
            report = evaluate_bag(args.bag, args.out, segmenter, options, weights=weights)
        except BagError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
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
    gt.add_argument("--label-topic", default=None,
                    help="mono8 trainId label topic, matched by header stamp")
    gt.add_argument("--gt-folder", default=None, help="folder of label PNGs")
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
    p.set_defaults(func=_eval_bag)


# --------------------------------------------------------------------------- play-bag

def _play_bag(args: argparse.Namespace) -> int:
    from .bags import BagError
    from .live import PlayOptions, play_bag

    options = PlayOptions(image_topic=args.image_topic, topic=args.topic, rate=args.rate,
                          loop=args.loop, wait_for_subscribers=args.wait_subscribers,
                          wait_timeout_s=args.wait_timeout, start_delay_s=args.delay,
                          reliability=args.qos)
    try:
        stats = play_bag(args.bag, options)
    except BagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"played {stats['published']} frames on {stats['topic']} in "
          f"{stats['wall_s']:.1f} s ({stats['fps']:.1f} FPS)"
          + (" (interrupted)" if stats["interrupted"] else ""))
    return 130 if stats["interrupted"] else 0


def _register_play(sub) -> None:
    p = sub.add_parser(
        "play-bag", help="publish a bag's image topic at its recorded rate (ROS 2)",
        description="Publishes BAG's image topic (sensor_msgs/Image or CompressedImage) with "
                    "the recorded header stamps, at the recorded rate times --rate, so a "
                    "running node sees a real-time camera. Needs rclpy.")
    p.add_argument("bag")
    p.add_argument("--image-topic", default=None,
                   help="topic to read from the bag (default: the only image topic not "
                        "named .../label*)")
    p.add_argument("--topic", default=None,
                   help="topic to publish on (default: the same name as in the bag)")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor (default: 1.0)")
    p.add_argument("--loop", action="store_true", help="start over at the end")
    p.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                   help="wait until N subscribers are matched before publishing")
    p.add_argument("--wait-timeout", type=float, default=30.0,
                   help="how long to wait for them (seconds)")
    p.add_argument("--delay", type=float, default=0.0,
                   help="seconds to wait before the first frame")
    p.add_argument("--qos", default="reliable", choices=("reliable", "best_effort"),
                   help="publisher reliability (default: reliable, matches any subscriber)")
    p.set_defaults(func=_play_bag)


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
    _register_play(sub)
    _register_make(sub)

