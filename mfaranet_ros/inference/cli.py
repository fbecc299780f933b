"""``mfaranet bench`` and ``mfaranet build-engine``."""
from __future__ import annotations

import argparse
import sys
import tempfile

from ..bench.arguments import add_run_arguments, add_weights_argument, network_size
from ..bench.backends import parse_backends
from ..cli_args import parse_size
from ..names import DEFAULT_PRECISION, PRECISIONS

#: What ``mfaranet bench`` compares with the baseline unless told otherwise.
DEFAULT_BENCH_BACKENDS = "torch,onnxruntime"


def _bench_single(args: argparse.Namespace, weights: str) -> list:
    from ..bench.segmenter import bench_segmenter, format_table

    rows = bench_segmenter(weights, args.backends, args.input_size, frame_size=args.frame_size,
                           iterations=args.iterations, warmup=args.warmup, pruned=args.pruned,
                           device=args.device, cache_dir=args.cache_dir)
    print()
    print(f"{'pruned' if args.pruned else 'full'} model, {args.iterations} iterations after "
          f"{args.warmup} warm-up; baseline = torch fp32 eager, NCHW, inference_mode, CPU; "
          f"labels = pixels labelled as the baseline labels them")
    print(format_table(rows))
    return [r.as_dict() for r in rows]


def _bench_cameras(args: argparse.Namespace, weights: str) -> list:
    from ..bench.cameras import bench_cameras, format_camera_table

    results = [bench_cameras(weights, n, pair, input_size=size, frame_size=args.frame_size,
                             iterations=args.iterations, warmup=args.warmup,
                             pruned=args.pruned, device=args.device, cache_dir=args.cache_dir)
               for pair in args.backends for size in args.input_size for n in args.cameras]
    print()
    print(f"multi-camera, {args.iterations} iterations per camera after {args.warmup} warm-up")
    print(format_camera_table(results))
    return results


def _bench(args: argparse.Namespace) -> int:
    from ..bench import WorkerError, machine_info, weights_or_random, write_json

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


def _calibration(args: argparse.Namespace, precision: str):
    """The ``--calibration`` source for an int8 build (None for other precisions)."""
    from .calibration import CalibrationSpec

    if precision != "int8":
        if args.calibration is not None:
            raise ValueError(f"--calibration is for --precision int8, not {precision}")
        return None
    if args.calibration is None:
        raise ValueError("--precision int8 needs --calibration BAG|IMAGE_FOLDER|synthetic "
                         "(the frames whose activation ranges set the int8 scales)")
    return CalibrationSpec(args.calibration, args.calibration_topic, args.calibration_frames,
                           args.held_out_frames)


def _build_engine(args: argparse.Namespace) -> int:
    import time

    from .backends import BackendUnavailable, ModelSource, create_backend
    from .cache import resolve_cache_dir

    if args.dry_run:
        return _tensorrt_dry_run(args)
    precision = args.precision or DEFAULT_PRECISION
    h, w = args.input_size
    cache = resolve_cache_dir(args.cache_dir)
    print(f"cache directory: {cache.path or f'{cache.requested} (NOT writable: {cache.reason})'}")
    try:
        source = ModelSource(args.weights, pruned=args.pruned)
        backend = create_backend(args.backend, source, device=args.device, precision=precision,
                                 cache=cache, calibration=_calibration(args, precision))
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
    from .backends.tensorrt_backend import EngineBuild
    from .backends.tensorrt_compat import import_torch_tensorrt

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
        trt = import_torch_tensorrt()
        source = ModelSource(args.weights, pruned=args.pruned)
    except (BackendUnavailable, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    h, w = args.input_size
    build = EngineBuild(source, args.batch, h, w, args.precision or DEFAULT_PRECISION,
                        args.confidence, args.device or "cuda")
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
                        "torch,onnxruntime,onnxruntime:int8 (precision default fp32; default: "
                        f"{DEFAULT_BENCH_BACKENDS})")
    p.add_argument("--input-size", type=network_size, nargs="+", default=[(512, 1024)],
                   metavar="HxW", help="network input size(s), or full (default: 512x1024)")
    add_run_arguments(p, process="process", iterations=10, warmup=2,
                      iterations_note="per backend, interleaved (per process with --cameras)",
                      frame_default="the input size")
    p.add_argument("--pruned", action="store_true", help="MFARANet-Pruned (branch 2)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--cache-dir", default=None, help="artifact cache (default: user cache dir)")
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "build-engine", help="compile and cache a backend artifact (ONNX file, TensorRT engine)",
        description="Builds the artifact the node would build on first use, without ROS, and "
                    "prints where it is cached (for install scripts and Dockerfiles). With "
                    "--dry-run (tensorrt): checks that the graph converts into one engine.")
    p.add_argument("--weights", required=True, help="checkpoint (project or official format)")
    p.add_argument("--backend", choices=("onnxruntime", "openvino", "tensorrt"), required=True)
    p.add_argument("--input-size", type=parse_size, required=True, metavar="HxW",
                   help="network input size, e.g. 512x1024 (or the camera's size for full "
                        "resolution)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help=f"default: {DEFAULT_PRECISION}, the node's default, so the node "
                        "loads what this builds; int8 (onnxruntime, "
                        "openvino) needs --calibration, bf16 (openvino) a CPU with bf16")
    p.add_argument("--calibration", default=None, metavar="BAG|IMAGE_FOLDER|synthetic",
                   help="int8 calibration frames: a bag, a folder of images, or 'synthetic' "
                        "(generated street scenes)")
    p.add_argument("--calibration-topic", default=None, metavar="TOPIC",
                   help="the bag's image topic (default: its only one)")
    p.add_argument("--calibration-frames", type=int, default=16, metavar="N",
                   help="frames to calibrate on (default: 16)")
    p.add_argument("--held-out-frames", type=int, default=8, metavar="N",
                   help="other frames the int8 model's accuracy is measured on (default: 8)")
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
