"""The ``mfaranet`` command line: one entry point, one subcommand module per subsystem.

Each module in :data:`COMMAND_MODULES` has ``register(subparsers)``, which adds its
subcommands with ``set_defaults(func=callable(args) -> int)``. Heavy imports happen
inside those callables, so ``mfaranet --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

COMMAND_MODULES = [
    "mfaranet_ros.model.cli",
    "mfaranet_ros.demo",
    "mfaranet_ros.evaluation.cli",
    "mfaranet_ros.training.cli",
    "mfaranet_ros.training.ablation_cli",
    "mfaranet_ros.evaluation.build_engine",
    "mfaranet_ros.bench.cli",
    "mfaranet_ros.ros.tools.cli",
]
#: packages of the optional install sets (requirements-<set>.txt) -> the set; a command that
#: meets one missing says which set to install instead of a traceback
OPTIONAL_PACKAGES = {"rosbags": "eval", "matplotlib": "eval", "cityscapesscripts": "eval",
                     "tqdm": "eval", "ray": "fleet", "onnx": "onnxruntime",
                     "onnxscript": "onnxruntime", "onnxruntime": "onnxruntime",
                     "openvino": "openvino", "nncf": "openvino"}
COMMAND_SETS = {"train": "train", "eval-fleet": "fleet", "bench-fleet": "fleet"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mfaranet",
        description="MFARANet semantic segmentation for ROS 2: tools that run without ROS.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if package not in OPTIONAL_PACKAGES:
            raise
        wanted = OPTIONAL_PACKAGES[package]
        if wanted in ("eval", "fleet"):
            wanted = COMMAND_SETS.get(args.command, wanted)
        print(f"error: mfaranet {args.command} needs {package}, which is not installed: "
              f"pip install -r requirements-{wanted}.txt (or python3 "
              f"scripts/install_runtime.py --with {wanted})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
