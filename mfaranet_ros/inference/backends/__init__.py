"""Backends behind one interface, chosen by name; optional runtimes import only in their module."""
from __future__ import annotations

import logging
from typing import List, Optional, Tuple

import torch

from ...names import BACKENDS, check_precision_name
from ..cache import CacheDir
from .base import (
    ARRAY_TYPES,
    BACKEND_PRECISIONS,
    PRECISIONS,
    Backend,
    BackendUnavailable,
    ModelSource,
    Outputs,
    check_precision,
    resolve_device,
)

__all__ = ["ARRAY_TYPES", "BACKENDS", "BACKEND_PRECISIONS", "Backend", "BackendUnavailable",
           "ModelSource", "Outputs", "check_precision", "create_backend", "resolve_device",
           "PRECISIONS"]

log = logging.getLogger(__name__)



def _create_one(name: str, source: ModelSource, device: Optional[str], precision: str,
                cache: CacheDir, compile: bool, calibration=None) -> Backend:
    check_precision(name, precision)
    if name == "openvino":
        from .openvino_backend import OpenVinoBackend
        return OpenVinoBackend(source, device, precision, cache=cache, calibration=calibration)
    if name == "onnxruntime" and precision == "int8":
        from .onnxruntime_backend import OnnxRuntimeBackend
        return OnnxRuntimeBackend(source, "cpu" if device is None else resolve_device(device),
                                  precision, cache=cache, calibration=calibration)
    if name == "torch":
        from .torch_backend import TorchBackend
        return TorchBackend(source, resolve_device(device), precision, compile=compile)
    if name == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend
        return OnnxRuntimeBackend(source, resolve_device(device) if device else None, precision,
                                  cache=cache)
    if name == "tensorrt":
        from .tensorrt_backend import TensorRTBackend
        return TensorRTBackend(source, device or "cuda", precision, cache=cache)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


#: ``auto`` on the CPU (README, "CPU: int8 and bf16"): ONNX Runtime, a core dependency,
#: before the optional OpenVINO, whose fp32 lead was not consistent across runs here.
CPU_ORDER = ("onnxruntime", "openvino", "torch")
#: int8 on the CPU: OpenVINO's artifact ran faster than ONNX Runtime's in every run here.
INT8_ORDER = ("openvino", "onnxruntime")


def auto_candidates(device: Optional[str],
                    precision: str = "fp32") -> List[Tuple[str, Optional[str]]]:
    """``auto``'s order: TensorRT, then torch on CUDA, then the CPU backends.

    bf16 and int8 are CPU precisions: only the CPU backends that run them are tried.
    """
    cpu = [(b, "cpu") for b in CPU_ORDER]
    if precision == "int8":
        return [(b, "cpu") for b in INT8_ORDER]
    if precision == "bf16":
        return [(b, d) for b, d in cpu if precision in BACKEND_PRECISIONS[b]]
    if device == "cpu":
        return cpu
    gpu = device or "cuda"
    return [("tensorrt", gpu), ("torch", gpu), *cpu]


def create_backend(name: str, source: ModelSource, *, device: Optional[str] = None,
                   precision: str = "fp32", cache: CacheDir, compile: bool = False,
                   calibration=None) -> Backend:
    """The backend ``name`` (or the first that loads, for ``auto``).

    A named backend that cannot run raises :class:`BackendUnavailable` saying why;
    ``auto`` logs a warning with each reason and falls back. ``calibration``: a
    :class:`~..calibration.CalibrationSpec` to build an int8 artifact from (None: int8
    loads one built before, or refuses saying how to build it).
    """
    check_precision_name(precision)
    if name != "auto":
        return _create_one(name, source, device, precision, cache, compile, calibration)
    reasons = []
    for cand, dev in auto_candidates(device, precision):
        if cand == "torch" and dev != "cpu" and not torch.cuda.is_available():
            reasons.append(f"torch on {dev}: no CUDA device")
            continue
        # fp16 is a GPU setting: the CPU fallbacks run fp32.
        prec = precision if dev != "cpu" or precision != "fp16" else "fp32"
        try:
            backend = _create_one(cand, source, dev, prec, cache, compile, calibration)
        except BackendUnavailable as exc:
            reasons.append(f"{cand} on {dev}: {exc}")
            continue
        if prec != precision:
            reasons.append(f"{precision} is a GPU setting, running {prec}")
        if reasons:
            log.warning("backend 'auto' chose %s; unavailable: %s", backend.describe(),
                        "; ".join(reasons))
        return backend
    raise BackendUnavailable("no backend can run here: " + "; ".join(reasons))
