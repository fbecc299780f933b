"""``mfaranet bench-node``: the ROS node's own overhead, measured across processes."""
from __future__ import annotations

import argparse
import sys

from ..bench.arguments import add_run_arguments, add_weights_argument, network_size, positive_float
from ..bench.backends import parse_backend

#: Frame sizes when --frame-size is not given: a 2 MP camera alone, VGA when several.
OVERHEAD_FRAME = (1024, 2048)
CAMERAS_FRAME = (480, 640)


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--no-camera-profile", action="store_true",
                   help="do not give the camera process the large shared-memory profile")
    p.add_argument("--rate", type=positive_float, default=15.0, metavar="HZ",
                   help="with --cameras: frames per second per camera (default: 15)")
    p.add_argument("--seconds", type=positive_float, default=10.0, metavar="S",
                   help="with --cameras: measuring time per setup (default: 10)")
    p.set_defaults(func=_bench_node)


def _bench_node(args: argparse.Namespace) -> int:
    from ..bench import WorkerError

    try:
        return _run(args)
    except (WorkerError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from ..bench import write_json
    from .bench_node import bench_node, bench_node_cameras, format_multicamera, format_report

    if args.cameras:
        result = bench_node_cameras(args.cameras, args.weights, pair=args.backend,
                                    input_size=args.input_size,
                                    frame_size=args.frame_size or CAMERAS_FRAME,
                                    rate=args.rate, seconds=args.seconds)
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
