"""``backend[:precision]`` pairs, the one syntax of every benchmark's backend flags."""
from __future__ import annotations

import argparse
from typing import List, NamedTuple

# the precision of a pair that names none: the node's default
from ..names import DEFAULT_PRECISION

__all__ = ["BackendPrecision", "parse_backend", "parse_backends", "DEFAULT_PRECISION"]


class BackendPrecision(NamedTuple):
    backend: str
    precision: str

    @property
    def label(self) -> str:
        """``backend:precision``, the pair as the command line writes it."""
        return f"{self.backend}:{self.precision}"


def parse_backend(text: str) -> BackendPrecision:
    """``"onnxruntime"`` -> ``("onnxruntime", "fp32")``; ``"tensorrt:fp16"`` -> as written;
    ``"auto:auto"``: precision ``auto`` (chosen and measured when the backend loads).

    Validated against the one list of backends and precisions (:mod:`mfaranet_ros.names`),
    read at call time so that a name added there is accepted here unchanged. Raises
    :class:`argparse.ArgumentTypeError` naming what is wrong and the choices.
    """
    from .. import names

    BACKENDS = names.BACKENDS
    name, sep, precision = text.strip().partition(":")
    name, precision = name.strip(), precision.strip()
    if name not in BACKENDS:
        raise argparse.ArgumentTypeError(
            f"unknown backend {name!r} in {text!r}; choose from {', '.join(BACKENDS)}")
    if sep:
        try:
            names.check_precision_request(precision)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (in {text!r})") from None
    return BackendPrecision(name, precision if sep else DEFAULT_PRECISION)


def parse_backends(text: str) -> List[BackendPrecision]:
    """A comma-separated list of pairs, e.g. ``torch,onnxruntime,onnxruntime:int8``.

    Duplicates are an error (they would be measured twice under one label).
    """
    items = [t for t in (s.strip() for s in text.split(",")) if t]
    if not items:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of backend[:precision], got {text!r}")
    pairs = [parse_backend(t) for t in items]
    seen = set()
    for pair in pairs:
        if pair in seen:
            raise argparse.ArgumentTypeError(f"{pair.label} is listed twice in {text!r}")
        seen.add(pair)
    return pairs
