"""Argument types shared by every ``mfaranet`` subcommand, so one syntax means one thing."""
from __future__ import annotations

import argparse
import re
from typing import Sequence, Tuple

from .names import CHECKPOINT_SIZE, InputSize

__all__ = ["parse_size", "parse_input_size", "network_size", "network_hw", "MIN_NETWORK_SIZE",
           "positive_int", "non_negative_int", "positive_float"]

#: The smallest network input side: the encoder downsamples 32x (the node's ``input_size``
#: parameter is held to the same).
MIN_NETWORK_SIZE = 32

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


def parse_input_size(text: str, words: Sequence[str] = (CHECKPOINT_SIZE, "full")) -> InputSize:
    """``--input-size``: ``HxW`` (both at least :data:`MIN_NETWORK_SIZE`), ``checkpoint``
    (the size the weights record) or ``full`` (None: every frame at its own resolution);
    ``words`` limits the two words a command takes."""
    word = text.strip().lower()
    if word in words:
        return None if word == "full" else CHECKPOINT_SIZE
    try:
        return parse_size(text, minimum=MIN_NETWORK_SIZE)
    except argparse.ArgumentTypeError as exc:
        if not words:
            raise
        raise argparse.ArgumentTypeError(
            f"{exc}; or one of: {', '.join(repr(w) for w in words)}") from None


def network_size(text: str) -> InputSize:
    """``--input-size`` of the benchmarks: ``HxW`` or ``full`` (a size to measure at)."""
    return parse_input_size(text, words=("full",))


def network_hw(text: str) -> Tuple[int, int]:
    """A network input size that must be given as ``HxW`` (``build-engine``: an artifact is
    built for one size)."""
    return parse_input_size(text, words=())


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value
