"""``mfaranet bench``: latency per backend[:precision] against torch fp32 eager."""
from __future__ import annotations

import argparse
import sys
import tempfile

from ..cli_args import network_size
from .arguments import add_run_arguments, add_weights_argument
from .backends import parse_backends

__all__ = ["register"]

#: What ``mfaranet bench`` compares with the baseline unless told otherwise.
DEFAULT_BENCH_BACKENDS = "torch,onnxruntime"


def _bench_single(args: argparse.Namespace, weights: str) -> list:
    from .report import cpu_line
    from .segmenter import bench_segmenter, format_table

    rows = bench_segmenter(weights, args.backends, args.input_size, frame_size=args.frame_size,
                           iterations=args.iterations, warmup=args.warmup, pruned=args.pruned,
                           device=args.device, cache_dir=args.cache_dir)
    print()
    print(f"{'pruned' if args.pruned else 'full'} model, {args.iterations} iterations after "
          f"{args.warmup} warm-up; baseline = torch fp32 eager, NCHW, inference_mode, CPU; "
          f"labels = pixels labelled as the baseline labels them")
    print(cpu_line())
    print(format_table(rows))
    for r in rows:
        if r.precision_choice:
            print(f"{r.backend}:auto: {_choice_line(r.precision_choice)}")
    return [r.as_dict() for r in rows]


def _choice_line(choice: dict) -> str:
    """What precision auto chose, and each precision's outcome, on one line."""
    trials = "; ".join(f"{t['precision']} {t['outcome']} ({t['reason']})"
                       for t in choice["trials"])
    return f"{choice['precision']} on the {choice['device']}: {trials}"


def _bench_cameras(args: argparse.Namespace, weights: str) -> list:
    from .cameras import bench_cameras, format_camera_table
    from .report import cpu_line

    results = [bench_cameras(weights, n, pair, input_size=size, frame_size=args.frame_size,
                             iterations=args.iterations, warmup=args.warmup,
                             pruned=args.pruned, device=args.device, cache_dir=args.cache_dir)
               for pair in args.backends for size in args.input_size for n in args.cameras]
    print()
    print(f"multi-camera, {args.iterations} iterations per camera after {args.warmup} warm-up")
    print(cpu_line())
    print(format_camera_table(results))
    return results


def _bench(args: argparse.Namespace) -> int:
    from . import WorkerError, machine_info, weights_or_random, write_json

    if args.frame_size is None and None in args.input_size:
        print("error: --input-size full needs --frame-size HxW", file=sys.stderr)
        return 2
    report = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_or_random(args.weights, tmp)
        if args.cameras:
            try:
                report["cameras"] = _bench_cameras(args, weights)
            except WorkerError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        else:
            report["single"] = _bench_single(args, weights)
    if write_json(args.json, report):
        print(f"wrote {args.json}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="latency per backend[:precision] against torch fp32 eager (or --cameras N)",
        description="Median/p90/p99 of the bare model and of the whole Segmenter call per "
                    "backend and network input size, the ratio to torch fp32 eager and the "
                    "label agreement with it, all measured interleaved in the same run. With "
                    "--cameras: N cameras batched in one process vs N processes, per backend.")
    add_weights_argument(p)
    # A string default goes through `type` when the flag is absent: validated like input.
    p.add_argument("--backends", type=parse_backends, default=DEFAULT_BENCH_BACKENDS,
                   metavar="B[:P],...",
                   help="comma-separated backend[:precision] pairs, e.g. "
                        "torch,onnxruntime,onnxruntime:int8 (precision default fp32; auto: "
                        "the precision auto chooses on this machine, measured at load; "
                        f"default: {DEFAULT_BENCH_BACKENDS})")
    p.add_argument("--input-size", type=network_size, nargs="+", default=[(512, 1024)],
                   metavar="HxW", help="network input size(s), or full (default: 512x1024)")
    add_run_arguments(p, process="process", iterations=10, warmup=2,
                      iterations_note="per backend, interleaved (per process with --cameras)",
                      frame_default="the input size")
    p.add_argument("--pruned", action="store_true", help="MFARANet-Pruned (branch 2)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--cache-dir", default=None, help="artifact cache (default: user cache dir)")
    p.set_defaults(func=_bench)
