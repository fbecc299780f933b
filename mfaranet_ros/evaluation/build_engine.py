"""``mfaranet build-engine``: compile and cache a backend's artifact, without ROS.

It sits above ``inference/`` and gives it what ``inference/`` may not import itself: for an
int8 build, the bag reader for calibration frames and the metric for the accuracy check.
"""
from __future__ import annotations

import argparse
import sys

from ..cli_args import network_hw
from ..names import DEFAULT_PRECISION, PRECISIONS

__all__ = ["register", "calibration_spec", "print_conversion_report", "print_dry_run"]


def calibration_spec(source: str, image_topic=None, frames: int = 16, held_out: int = 8):
    """An int8 calibration spec whose bag frames are read by :mod:`.bags` and whose
    held-out accuracy is scored by :mod:`.metrics` (the one mIoU)."""
    from ..inference.calibration import CalibrationSpec
    from .bags import calibration_images
    from .metrics import predictions_miou

    return CalibrationSpec(source, image_topic, frames, held_out,
                           read_bag=calibration_images, miou=predictions_miou)


def _calibration(args: argparse.Namespace, precision: str):
    """The ``--calibration`` source for an int8 build (None for other precisions)."""
    if precision != "int8":
        if args.calibration is not None:
            raise ValueError(f"--calibration is for --precision int8, not {precision}")
        return None
    if args.calibration is None:
        raise ValueError("--precision int8 needs --calibration BAG|IMAGE_FOLDER|synthetic "
                         "(the frames whose activation ranges set the int8 scales)")
    return calibration_spec(args.calibration, args.calibration_topic, args.calibration_frames,
                            args.held_out_frames)


def _build_engine(args: argparse.Namespace) -> int:
    import time

    from ..inference.backends import BackendUnavailable, ModelSource, create_backend
    from ..inference.cache import resolve_cache_dir

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

    from ..inference.backends import BackendUnavailable, ModelSource
    from ..inference.backends.tensorrt_backend import EngineBuild
    from ..inference.backends.tensorrt_compat import import_torch_tensorrt

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
        "build-engine", help="compile and cache a backend artifact (ONNX file, TensorRT engine)",
        description="Builds the artifact the node would build on first use, without ROS, and "
                    "prints where it is cached (for install scripts and Dockerfiles). With "
                    "--dry-run (tensorrt): checks that the graph converts into one engine.")
    p.add_argument("--weights", required=True, help="checkpoint (project or official format)")
    p.add_argument("--backend", choices=("onnxruntime", "openvino", "tensorrt"), required=True)
    p.add_argument("--input-size", type=network_hw, required=True, metavar="HxW",
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
