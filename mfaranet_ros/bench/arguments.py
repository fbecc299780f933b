"""Command-line flags the benchmark commands share, so each flag means one thing.

``mfaranet bench`` and ``mfaranet bench-node`` take the same ``--weights``,
``--input-size``, ``--frame-size``, ``--iterations``, ``--warmup``, ``--cameras`` and
``--json``; sizes are always ``HxW`` (height first), backends ``backend[:precision]``.
"""
from __future__ import annotations

import argparse
import os
from typing import Tuple

from ..cli_args import non_negative_int, parse_size, positive_int

__all__ = ["frame_size", "weights_file", "add_weights_argument", "add_run_arguments",
           "CAMERAS_HELP"]

#: The one meaning of ``--cameras`` in every benchmark command.
CAMERAS_HELP = ("multi-camera mode: for each N, N cameras batched in one {process} against "
                "N single-camera {process}es running at the same time (throughput, median "
                "latency, peak memory and their ratios)")


def frame_size(text: str) -> Tuple[int, int]:
    """A camera frame ``HxW``."""
    return parse_size(text)


def weights_file(text: str) -> str:
    """A checkpoint path, resolved as the node resolves its ``weights`` parameter (a
    relative path is looked for in the package's models/ first); it must exist."""
    from ..model.weights import resolve_weights

    path = resolve_weights(text)
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no checkpoint at {text!r} (looked at {path})")
    return path


def add_weights_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", type=weights_file, default=None, metavar="PATH",
                   help="checkpoint; a relative path is looked for in the package's models/ "
                        "first (default: a seeded random-init 19-class MFARANet; timings do "
                        "not depend on the weights)")


def add_run_arguments(p: argparse.ArgumentParser, *, process: str, iterations: int,
                      warmup: int, frame_default: str, iterations_note: str) -> None:
    """The flags after the backend and input size; ``process``: what ``--cameras`` starts."""
    p.add_argument("--frame-size", type=frame_size, default=None, metavar="HxW",
                   help=f"camera frame size, height x width (default: {frame_default})")
    p.add_argument("--iterations", type=positive_int, default=iterations, metavar="N",
                   help=f"measured frames, {iterations_note} (default: {iterations})")
    p.add_argument("--warmup", type=non_negative_int, default=warmup, metavar="N",
                   help=f"untimed frames before them (default: {warmup})")
    p.add_argument("--cameras", type=positive_int, nargs="+", default=None, metavar="N",
                   help=CAMERAS_HELP.format(process=process))
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write every figure as JSON (schema: docs/benchmarks.md)")
