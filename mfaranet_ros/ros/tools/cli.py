"""The commands that need ROS: ``bench-node`` (the node's own overhead, across
processes), ``play-bag``, and the live half of ``eval-bag --live``."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ...bench.arguments import add_run_arguments, add_weights_argument
from ...bench.backends import parse_backend
from ...cli_args import network_size, positive_float
from ...evaluation.errors import one_line_errors
from ...evaluation.live import register_live_evaluation

#: Frame sizes when --frame-size is not given: a 2 MP camera alone, VGA when several.
OVERHEAD_FRAME = (1024, 2048)
CAMERAS_FRAME = (480, 640)


def _play_bag(args: argparse.Namespace) -> int:
    from .player import PlayOptions, play_bag

    options = PlayOptions(image_topic=args.image_topic, topic=args.topic, rate=args.rate,
                          loop=args.loop, wait_for_subscribers=args.wait_subscribers,
                          wait_timeout_s=args.wait_timeout, start_delay_s=args.delay,
                          reliability=args.qos)
    stats = play_bag(args.bag, options)
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
    p.set_defaults(func=one_line_errors(_play_bag))


def _eval_live(args: argparse.Namespace, metadata: Callable[[], object]):
    """eval-bag --live: the running node's outputs against the bag (``live_eval``);
    ``metadata()`` reads the checkpoint's classes, once the bag has been checked."""
    from .live_eval import LiveOptions, evaluate_live, prepare_live

    options = LiveOptions(
        image_topic=args.image_topic, label_topic=args.label_topic,
        gt_folder=args.gt_folder, gt_match=args.gt_match, gt_ids=args.gt_ids,
        node=args.node, duration_s=args.duration, idle_s=args.idle,
        max_frames=args.max_frames, startup_timeout_s=args.startup_timeout)
    prepare_live(args.bag, options)          # the bag first: cheap, and fails fast
    return evaluate_live(args.bag, args.out, options, metadata=metadata())


def register(sub: argparse._SubParsersAction) -> None:
    register_live_evaluation(_eval_live)
    _register_play(sub)
    p = sub.add_parser(
        "bench-node",
        help="the segmentation node's overhead across processes (or --cameras N)",
        description="Runs the node in its own process and a camera in another: the median "
                    "of the node's end-to-end time (receipt -> labels/color/overlay published) "
                    "minus the Segmenter's, with percentiles. With --cameras: N cameras "
                    "batched in one node vs N node processes.")
    add_weights_argument(p)
    p.add_argument("--backend", type=parse_backend, default="torch", metavar="B[:P]",
                   help="the node's backend[:precision], e.g. onnxruntime or tensorrt:fp16 "
                        "(precision default fp32; default: torch)")
    p.add_argument("--input-size", type=network_size, default=(256, 512), metavar="HxW",
                   help="network input size, or full: every frame at its own resolution "
                        "(input_size [0, 0]; default: 256x512)")
    add_run_arguments(p, process="node process", iterations=30, warmup=5,
                      iterations_note="one at a time (--cameras measures for --seconds)",
                      frame_default=f"{OVERHEAD_FRAME[0]}x{OVERHEAD_FRAME[1]}, "
                                    f"{CAMERAS_FRAME[0]}x{CAMERAS_FRAME[1]} with --cameras")
    p.add_argument("--outputs", action="store_true",
                   help="measure, one after another in this run, the node with three outputs, "
                        "with every output (+ confidence, camera_info) and with every output "
                        "at label_resolution network; print the differences of the medians")
    p.add_argument("--publish-path", action="store_true",
                   help="no node: where publishing an output costs, per output and stage "
                        "(building the message, publish() with no subscriber, with a "
                        "reliable and with a best-effort subscriber in another process), "
                        "in ms and in passes of one memcpy, on the installed rclpy")
    p.add_argument("--overlap", action="store_true",
                   help="one camera faster than the node, three outputs subscribed: the frame "
                        "period and latency with publish_overlap never and always, alternated "
                        "--rounds times (uses --rate, default 30 here, and --seconds)")
    p.add_argument("--rounds", type=int, default=2, metavar="N",
                   help="with --overlap: how often each setting is measured (default: 2)")
    p.add_argument("--no-camera-profile", action="store_true",
                   help="do not give the camera process the large shared-memory profile")
    p.add_argument("--rate", type=positive_float, default=None, metavar="HZ",
                   help="with --cameras: frames per second per camera (default: 15; "
                        "--overlap: 30)")
    p.add_argument("--seconds", type=positive_float, default=10.0, metavar="S",
                   help="with --cameras: measuring time per setup (default: 10)")
    p.set_defaults(func=_bench_node)


def _bench_node(args: argparse.Namespace) -> int:
    from ...bench import WorkerError

    try:
        return _run(args)
    except (WorkerError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from ...bench import write_json
    from .bench_node import (
        bench_node,
        bench_node_cameras,
        bench_node_outputs,
        bench_node_overlap,
        format_multicamera,
        format_outputs,
        format_overlap,
        format_report,
    )

    if args.publish_path:
        from .publish_path import bench_publish_path, format_publish_path

        result = bench_publish_path(frame_size=args.frame_size or OVERHEAD_FRAME,
                                    iterations=args.iterations)
        print(format_publish_path(result))
    elif args.overlap:
        if args.rounds < 1:
            print("error: --rounds must be at least 1", file=sys.stderr)
            return 2
        result = bench_node_overlap(args.weights, pair=args.backend, input_size=args.input_size,
                                    frame_size=args.frame_size or OVERHEAD_FRAME,
                                    rate=args.rate or 30.0, seconds=args.seconds,
                                    rounds=args.rounds)
        print(format_overlap(result))
    elif args.outputs:
        result = bench_node_outputs(args.weights, pair=args.backend, input_size=args.input_size,
                                    frame_size=args.frame_size or OVERHEAD_FRAME,
                                    iterations=args.iterations, warmup=args.warmup,
                                    camera_profile=not args.no_camera_profile)
        print(format_outputs(result))
    elif args.cameras:
        result = bench_node_cameras(args.cameras, args.weights, pair=args.backend,
                                    input_size=args.input_size,
                                    frame_size=args.frame_size or CAMERAS_FRAME,
                                    rate=args.rate or 15.0, seconds=args.seconds)
        print(format_multicamera(result))
    else:
        result = bench_node(args.weights, pair=args.backend, input_size=args.input_size,
                            frame_size=args.frame_size or OVERHEAD_FRAME,
                            iterations=args.iterations, warmup=args.warmup,
                            camera_profile=not args.no_camera_profile)
        print(format_report(result))
    if write_json(args.json, result):
        print(f"wrote {args.json}")
    return 0
