"""The names every layer and every command line shares, without importing torch.

Backends, precisions and which backend runs which precision; the ``input_size`` word for
"the size the checkpoint records". The parsers of ``mfaranet`` and the node's parameter
table take their choices from here, so ``mfaranet --help`` needs no torch, and a name added
here is offered everywhere at once.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

__all__ = ["BACKENDS", "PRECISIONS", "DEFAULT_PRECISION", "BACKEND_PRECISIONS",
           "AUTO_PRECISION", "PRECISION_CHOICES", "CHECKPOINT_SIZE", "InputSize",
           "check_precision_name", "check_precision_request"]

#: Every backend name, ``auto`` first (its order of trial is ``inference.backends``').
BACKENDS: Tuple[str, ...] = ("auto", "tensorrt", "torch", "onnxruntime", "openvino")
PRECISIONS: Tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
#: What the node, ``eval-bag``, ``eval-fleet`` and ``bench`` may ask for: a precision, or
#: ``auto``, the fastest one this machine has units for that labels as fp32 does (measured
#: at load: ``inference.auto_precision``).
AUTO_PRECISION = "auto"
PRECISION_CHOICES: Tuple[str, ...] = (*PRECISIONS, AUTO_PRECISION)
#: the precision the node runs and ``build-engine`` builds when none is given (one default,
#: so a pre-built artifact is the one the node loads)
DEFAULT_PRECISION = "fp32"
#: What each backend can run. int8 needs a calibrated artifact (``mfaranet build-engine
#: --precision int8 --calibration ...``); bf16 needs a CPU with bf16 instructions.
BACKEND_PRECISIONS: Dict[str, Tuple[str, ...]] = {
    "tensorrt": ("fp32", "fp16"),
    "torch": ("fp32", "fp16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}


def check_precision_name(precision: str) -> None:
    """ValueError unless ``precision`` is one of :data:`PRECISIONS` (whether a backend runs
    it is ``inference.backends.check_precision``'s question)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")


def check_precision_request(precision: str) -> None:
    """ValueError unless ``precision`` is ``auto`` or one of :data:`PRECISIONS`."""
    if precision != AUTO_PRECISION and precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from "
                         f"{', '.join((*PRECISIONS, AUTO_PRECISION))}")


#: ``input_size`` value meaning "the size the checkpoint's metadata records".
CHECKPOINT_SIZE = "checkpoint"
#: an ``input_size``: :data:`CHECKPOINT_SIZE`, ``(H, W)``, or None (full resolution)
InputSize = Union[str, Sequence[int], None]
