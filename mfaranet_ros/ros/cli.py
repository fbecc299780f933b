"""``mfaranet bench-node``: the ROS node's own overhead, measured across processes."""
from __future__ import annotations

import argparse
import json

from ..inference.backends import BACKENDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-node",
        help="measure the segmentation node's overhead across processes (median of "
             "end-to-end receipt -> labels/color/overlay published, minus the Segmenter)")
    p.add_argument("--weights", default=None,
                   help="checkpoint (default: a random 19-class MFARANet; the overhead does "
                        "not depend on the weights)")
    p.add_argument("--backend", default="torch",
                   choices=BACKENDS)
    p.add_argument("--input-size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"),
                   help="network input (default 256 512); 0 0 = full resolution")
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-camera-profile", action="store_true",
                   help="do not give this (camera) process the large shared-memory profile")
    p.add_argument("--cameras", type=int, nargs="+", metavar="N",
                   help="multi-camera mode: for each N, N cameras batched in one "
                        "node against N single-camera node processes (throughput, median "
                        "latency, peak RSS); frames default to 640x480 at --rate Hz")
    p.add_argument("--rate", type=float, default=15.0,
                   help="multi-camera mode: Hz per camera (default 15)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="multi-camera mode: measuring time per setup (default 10)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.set_defaults(func=_bench_node)


def _bench_node(args) -> int:
    from .bench import bench_multicamera, bench_node, format_multicamera, format_report

    size = None if not any(args.input_size) else tuple(args.input_size)
    if args.cameras:
        height = 480 if args.height == 1024 and args.width == 2048 else args.height
        width = 640 if args.height == 1024 and args.width == 2048 else args.width
        result = bench_multicamera(args.cameras, args.weights, backend=args.backend,
                                   input_size=size, height=height, width=width,
                                   rate=args.rate, seconds=args.seconds)
        print(format_multicamera(result))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
            print(f"wrote {args.json}")
        return 0
    result = bench_node(args.weights, backend=args.backend, input_size=size,
                        height=args.height, width=args.width, frames=args.frames,
                        warmup=args.warmup, camera_profile=not args.no_camera_profile)
    print(format_report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0
