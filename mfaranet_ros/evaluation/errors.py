"""One-line errors for the commands: a bad input prints ``error: ...`` and exits 2."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

__all__ = ["one_line_errors", "input_errors"]


def input_errors() -> tuple:
    """What a bad bag, ground truth, data folder or checkpoint raises: one line, rc 2."""
    from mfaranet_ros.labelmap import LabelMapError
    from mfaranet_ros.model import CheckpointError

    from .bags import BagError

    return (BagError, CheckpointError, FileNotFoundError, LabelMapError)


def one_line_errors(command: Callable[[argparse.Namespace], int]):
    """Runs a command; a bad input prints ``error: ...`` and returns 2 (no traceback)."""
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except input_errors() as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    run.__doc__ = command.__doc__
    return run


