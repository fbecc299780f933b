"""Argument types shared by every ``mfaranet`` subcommand, so one syntax means one thing."""
from __future__ import annotations

import argparse
import re
from typing import Tuple

__all__ = ["parse_size"]

_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_size(text: str, minimum: int = 8) -> Tuple[int, int]:
    """``"512x1024"`` -> ``(512, 1024)`` (height x width); both at least ``minimum``."""
    m = _SIZE.fullmatch(text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 512x1024), got {text!r}")
    h, w = int(m.group(1)), int(m.group(2))
    if h < minimum or w < minimum:
        raise argparse.ArgumentTypeError(
            f"size {text!r} is too small ({minimum}x{minimum} at least)")
    return h, w
