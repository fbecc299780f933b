"""The nodes' console scripts: signals are handled from the first instruction.

Importing a node module takes seconds (torch, the backends, rclpy). A SIGINT or SIGTERM
in that window would otherwise meet Python's default handlers: a ``KeyboardInterrupt``
traceback in the middle of an import, or exit code 143. Nothing is running yet then, so
the process just exits 0; once the node module's :func:`~.node.run` installs its own
handlers, those take over.
"""
from __future__ import annotations

import importlib
import signal

__all__ = ["segmentation_node", "segmentation_lifecycle_node"]


SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _exit_quietly(signum, frame) -> None:
    # Ignored from now on: the interpreter's exit puts the default handlers back, and a
    # second signal (a terminal and launch each send one) would then kill the process.
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(0)


def _main_of(module: str) -> int:
    for sig in SIGNALS:
        signal.signal(sig, _exit_quietly)
    return importlib.import_module(module).main()


def segmentation_node() -> int:
    """Console script ``segmentation_node``."""
    return _main_of("mfaranet_ros.ros.node")


def segmentation_lifecycle_node() -> int:
    """Console script ``segmentation_lifecycle_node``."""
    return _main_of("mfaranet_ros.ros.lifecycle_node")
