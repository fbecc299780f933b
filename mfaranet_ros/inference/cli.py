"""``mfaranet bench`` and ``mfaranet build-engine``."""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from typing import Optional, Tuple

from ..cli_args import parse_size
from ..inference.backends import BACKENDS

BENCH_BACKENDS = tuple(b for b in BACKENDS if b != "auto")


def _weights_or_random(weights: Optional[str], tmp: str) -> str:
    if weights:
        return weights
    from .bench import random_checkpoint
    print("no --weights: timing a random-init 19-class MFARANet (timings do not depend on the weights)")
    return random_checkpoint(tmp)


def _bench(args: argparse.Namespace) -> int:
    import platform

    import torch

    from . import bench

    report = {"command": " ".join(sys.argv), "torch": torch.__version__,
              "machine": f"{platform.machine()}, {__import__('os').cpu_count()} logical CPUs, "
                         f"{torch.get_num_threads()} torch threads",
              "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    with tempfile.TemporaryDirectory() as tmp:
        weights = _weights_or_random(args.weights, tmp)
        if args.cameras:
            results = []
            for n in args.cameras:
                results.append(bench.bench_cameras(
                    weights, n, backend=args.camera_backend, input_size=args.input_size[0],
                    frame_size=args.frame_size, iterations=args.iterations, warmup=args.warmup,
                    pruned=args.pruned, precision=args.precision, device=args.device,
                    cache_dir=args.cache_dir))
            print()
            print(f"multi-camera, backend {results[0]['batched']['backend']}, network input "
                  f"{args.input_size[0][0]}x{args.input_size[0][1]}, {args.iterations} iterations per camera")
            print(bench.format_camera_table(results))
            report["cameras"] = results
        else:
            rows = bench.bench_single(
                weights, args.backends, args.input_size, frame_size=args.frame_size,
                iterations=args.iterations, warmup=args.warmup, pruned=args.pruned,
                precision=args.precision, device=args.device, cache_dir=args.cache_dir)
            print()
            print(f"{'pruned' if args.pruned else 'full'} model, {args.iterations} iterations after "
                  f"{args.warmup} warm-up; baseline = torch fp32 eager, NCHW, inference_mode, CPU")
            print(bench.format_table(rows))
            report["single"] = [r.as_dict() for r in rows]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    return 0


def _build_engine(args: argparse.Namespace) -> int:
    import time

    from .backends import BackendUnavailable, ModelSource, create_backend
    from .cache import resolve_cache_dir

    if args.dry_run:
        return _tensorrt_dry_run(args)
    precision = args.precision or ("fp16" if args.backend == "tensorrt" else "fp32")
    h, w = args.input_size
    cache = resolve_cache_dir(args.cache_dir)
    print(f"cache directory: {cache.path or f'{cache.requested} (NOT writable: {cache.reason})'}")
    try:
        source = ModelSource(args.weights, pruned=args.pruned)
        backend = create_backend(args.backend, source, device=args.device, precision=precision,
                                 cache=cache)
        print(f"building {backend.describe()} for {source.describe()}, input {args.batch}x{h}x{w}"
              f"{' with confidence' if args.confidence else ''} ...", flush=True)
        t0 = time.perf_counter()
        backend.prepare(args.batch, h, w, confidence=args.confidence)
    except (BackendUnavailable, ValueError, RuntimeError) as exc:
        # BackendUnavailable includes a failed TensorRT build (EngineBuildError)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = backend.artifacts()
    if not paths:
        print("error: nothing was written (cache directory not writable)", file=sys.stderr)
        return 1
    for path in paths.values():
        print(f"ready in {time.perf_counter() - t0:.1f} s; cached at {path}")
    return 0


#: How to run the same check where there is no GPU (the test installs what it needs).
DRY_RUN_TEST = "bash scripts/test.sh test/test_tensorrt_convert.py"


def _tensorrt_dry_run(args: argparse.Namespace) -> int:
    """``build-engine --backend tensorrt --dry-run``: op coverage, engines, nothing built."""
    import torch

    from .backends import BackendUnavailable, ModelSource
    from .backends.tensorrt_backend import EngineBuild, _import_torch_tensorrt

    if args.backend != "tensorrt":
        print("error: --dry-run checks the TensorRT conversion: use it with --backend tensorrt",
              file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(f"error: the TensorRT dry run needs torch-tensorrt and a CUDA device (torch "
              f"{torch.__version__} sees none); without a GPU, run the same check as a test, "
              f"in a checkout of this repository: {DRY_RUN_TEST}", file=sys.stderr)
        return 2
    try:
        trt = _import_torch_tensorrt()
        source = ModelSource(args.weights, pruned=args.pruned)
    except (BackendUnavailable, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    h, w = args.input_size
    build = EngineBuild(source, args.batch, h, w, args.precision or "fp16", args.confidence,
                        args.device or "cuda")
    return print_dry_run(build, trt)


def print_dry_run(build, trt) -> int:
    """Dry-runs ``build`` (a ``tensorrt_backend.EngineBuild``) with ``trt`` and prints it."""
    import contextlib
    import io
    import logging

    print(f"TensorRT dry run, torch-tensorrt {trt.__version__}: {build.describe()}", flush=True)
    own_report = io.StringIO()  # torch-tensorrt prints its own summary: kept for -v
    with contextlib.redirect_stdout(own_report):
        report = build.dry_run(trt)
    logging.getLogger(__name__).debug("torch-tensorrt's dry run output:%s", own_report.getvalue())
    return print_conversion_report(report)


def print_conversion_report(report) -> int:
    """Prints a ``ConversionReport``; 0 when the graph is one engine, 1 when anything would
    run in PyTorch."""
    print(report.table())
    print(report.summary())
    if report.fully_converted:
        print("ok: the whole graph converts into one TensorRT engine (nothing was built: "
              "tactics, engine size and speed are found by a real build)")
        return 0
    left = ", ".join(report.left_to_torch) or "none"
    print(f"error: the graph would not run as one TensorRT engine ({report.engines} engines); "
          f"nodes left to PyTorch: {left}", file=sys.stderr)
    return 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="latency/throughput per backend and input size (or --cameras N)",
        description="Median/p90/p99 of the bare model and of the whole Segmenter call per backend "
                    "and network input size, with the ratio to torch fp32 eager measured in the "
                    "same run. With --cameras: N cameras batched in one process vs N processes.")
    p.add_argument("--weights", default=None, help="checkpoint (default: a random-init model)")
    p.add_argument("--backends", default=list(BENCH_BACKENDS[:2]),
                   type=lambda s: [b.strip() for b in s.split(",") if b.strip()],
                   help="comma-separated: torch,onnxruntime,tensorrt (default: torch,onnxruntime)")
    p.add_argument("--input-size", type=parse_size, nargs="+", default=[(512, 1024)],
                   metavar="HxW", help="network input size(s) (default: 512x1024)")
    p.add_argument("--frame-size", type=parse_size, default=None, metavar="HxW",
                   help="source frame size for the Segmenter call (default: the input size)")
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--pruned", action="store_true", help="MFARANet-Pruned (branch 2)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--cache-dir", default=None, help="artifact cache (default: user cache dir)")
    p.add_argument("--cameras", type=int, nargs="+", default=None, metavar="N",
                   help="multi-camera mode: N cameras batched in one process vs N processes")
    p.add_argument("--camera-backend", default="auto",
                   help="backend of the multi-camera mode (default: auto)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "build-engine", help="compile and cache a backend artifact (ONNX file, TensorRT engine)",
        description="Builds the artifact the node would build on first use, without ROS, and "
                    "prints where it is cached (for install scripts and Dockerfiles). With "
                    "--dry-run (tensorrt): checks that the graph converts into one engine.")
    p.add_argument("--weights", required=True, help="checkpoint (project or official format)")
    p.add_argument("--backend", choices=("onnxruntime", "tensorrt"), required=True)
    p.add_argument("--input-size", type=parse_size, required=True, metavar="HxW",
                   help="network input size, e.g. 512x1024 (or the camera's size for full "
                        "resolution)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default=None,
                   help="default: fp16 for tensorrt, fp32 for onnxruntime")
    p.add_argument("--pruned", action="store_true", help="MFARANet-Pruned (branch 2)")
    p.add_argument("--batch", type=int, default=1,
                   help="batch size (TensorRT engines are static: one per camera count)")
    p.add_argument("--confidence", action="store_true",
                   help="the variant with a confidence output")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--cache-dir", default=None, help="artifact cache (default: user cache dir)")
    p.add_argument("--dry-run", action="store_true",
                   help="tensorrt: build nothing, print the op coverage and engine count; exit 1 "
                        "if anything would run in PyTorch (needs a GPU; without one: "
                        f"{DRY_RUN_TEST})")
    p.set_defaults(func=_build_engine)


__all__ = ["register"]
