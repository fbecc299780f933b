"""OpenVINO backend (CPU): fp32, bf16 where the processor has it, int8 calibrated with NNCF.

OpenVINO is optional: it is imported here only, and a missing install makes the backend
unavailable with the reason (``auto`` then skips it). Every artifact is an ONNX file with
the checkpoint's metadata embedded, in the same cache as the ONNX Runtime backend's
(:mod:`..onnx_artifacts`):

- fp32 and bf16 compile the fp32 export (the same cached file ONNX Runtime runs);
- int8 compiles an NNCF-quantized copy of it (``mfaranet-openvino-int8``), keyed by the
  checkpoint, the input size and the calibration frames' hash, with its accuracy.

The inference precision is always requested explicitly: on a CPU with bf16 units the
CPU plugin's default is bf16, so fp32 must be asked for when fp32 is meant. A bf16 request
on a CPU without bf16 units is refused rather than silently run as fp32.
"""
from __future__ import annotations

import io
import logging
import time
from typing import Dict, Optional, Tuple

import numpy as np

from ..cache import CacheDir
from ..onnx_artifacts import (
    CONFIDENCE,
    INPUT,
    LABELS,
    Int8Recipe,
    fp32_onnx,
    int8_onnx,
    require_any_int8,
)
from ..quantize import NNCF_RECIPE, OV_INSTALL, nncf_quantize_onnx
from .base import Backend, BackendUnavailable, ModelSource, Outputs, physical_cores

__all__ = ["OpenVinoBackend", "OV_INT8_ARTIFACT", "INFERENCE_HINTS"]

log = logging.getLogger(__name__)

OV_INT8_ARTIFACT = "mfaranet-openvino-int8"
#: INFERENCE_PRECISION_HINT per precision. int8: the quantized operators run int8 and
#: the rest f32 (never the plugin's bf16 default).
INFERENCE_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def _import_openvino():
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable(f"openvino is not installed ({exc}); {OV_INSTALL}") from None
    return openvino


def _nncf_version() -> str:
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable(f"nncf is not installed ({exc}); {OV_INSTALL}") from None
    return nncf.__version__


def _require_bf16(core) -> None:
    caps = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if "BF16" not in caps:
        raise BackendUnavailable(
            f"this CPU ({core.get_property('CPU', 'FULL_DEVICE_NAME')}) has no bf16 "
            f"instructions (OpenVINO reports {', '.join(caps)}; bf16 needs AVX512_BF16 or "
            f"AMX): OpenVINO would run fp32; use precision fp32 or int8")


def _compile(ov, core, model: object, shape: Tuple[int, int, int], hint: str, threads: int):
    """An ONNX model (path or bytes) compiled for ``(B, H, W, 3)`` with inference precision
    ``hint``; a bf16 request the CPU plugin turned into f32 is refused."""
    ov_model = core.read_model(model) if isinstance(model, str) else \
        ov.convert_model(io.BytesIO(model))
    ov_model.reshape({INPUT: [*shape, 3]})
    compiled = core.compile_model(ov_model, "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
    got = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if got != hint:
        raise BackendUnavailable(f"OpenVINO compiled for {got}, not {hint}, on this CPU")
    return compiled


class OpenVinoBackend(Backend):
    """One compiled OpenVINO model per (batch, height, width, confidence); numpy in and out."""

    name = "openvino"
    array_type = "numpy"

    def __init__(self, source: ModelSource, device: Optional[str], precision: str = "fp32", *,
                 cache: CacheDir, calibration=None, threads: Optional[int] = None) -> None:
        ov = _import_openvino()
        device = device or "cpu"
        if device != "cpu":
            raise BackendUnavailable(f"the openvino backend runs on the CPU, not {device!r}")
        super().__init__(source, device, precision)
        self._ov = ov
        self._core = ov.Core()
        if precision == "bf16":
            _require_bf16(self._core)
        self.cache = cache
        self.calibration = calibration
        self.threads = threads or physical_cores()
        self._compiled: Dict[Tuple[int, int, int, bool], object] = {}
        self._requests: Dict[Tuple[int, int, int, bool], object] = {}
        self._paths: Dict[Tuple[int, int, bool], str] = {}
        if precision == "int8" and calibration is None:
            require_any_int8(self.int8_recipe(), source, cache.readable)

    def describe(self) -> str:
        version = self._ov.__version__.split("-")[0]
        return (f"{self.name} {version} on cpu ({self.threads} threads, "
                f"inference precision {INFERENCE_HINTS[self.precision]}), {self.precision}")

    def int8_recipe(self) -> Int8Recipe:
        """OpenVINO's int8: NNCF, and f32 compiled models for the accuracy check."""
        return Int8Recipe(
            backend=self.name, artifact=OV_INT8_ARTIFACT,
            key_fields=lambda: {"artifact": "openvino-int8", "recipe": NNCF_RECIPE,
                                "nncf": _nncf_version()},
            quantize=lambda proto, frames, classes: nncf_quantize_onnx(proto, frames, classes,
                                                                       input_name=INPUT),
            runner=self._labels_runner)

    def _labels_runner(self, model):
        request = None

        def run(pixels: np.ndarray) -> np.ndarray:
            nonlocal request
            if request is None:
                request = _compile(self._ov, self._core, model, pixels.shape[:3], "f32",
                                   self.threads).create_infer_request()
            request.infer({INPUT: pixels})
            return request.get_tensor(LABELS).data.copy()
        return run

    def _model(self, height: int, width: int, confidence: bool) -> object:
        """The ONNX model this precision compiles: a path, or bytes kept in memory."""
        if self.precision == "int8":
            model, path = int8_onnx(self.int8_recipe(), self.source, self.cache, height, width,
                                    confidence, calibration=self.calibration)
        else:
            model, path = fp32_onnx(self.source, self.cache, height, width, confidence)
        if path is not None:
            self._paths[(height, width, confidence)] = str(path)
        return model

    def compile(self, model: object, batch: int, height: int, width: int):
        """``model`` (ONNX path or bytes) compiled for a static ``(batch, H, W, 3)`` input."""
        return _compile(self._ov, self._core, model, (batch, height, width),
                        INFERENCE_HINTS[self.precision], self.threads)

    def _request(self, batch: int, height: int, width: int, confidence: bool):
        key = (int(batch), int(height), int(width), bool(confidence))
        req = self._requests.get(key)
        if req is None:
            t0 = time.perf_counter()
            compiled = self.compile(self._model(*key[1:]), *key[:3])
            self._compiled[key] = compiled
            req = self._requests[key] = compiled.create_infer_request()
            log.info("openvino: compiled %dx%dx%d %s in %.1f s", *key[:3], self.precision,
                     time.perf_counter() - t0)
        return req

    def artifacts(self) -> Dict[Tuple, str]:
        return dict(self._paths)

    def prepare(self, batch: int, height: int, width: int, confidence: bool = False) -> float:
        t0 = time.perf_counter()
        self._request(batch, height, width, confidence)
        return time.perf_counter() - t0

    def run(self, pixels: np.ndarray, confidence: bool = False) -> Outputs:
        b, h, w = pixels.shape[:3]
        req = self._request(b, h, w, confidence)
        req.infer({INPUT: np.ascontiguousarray(pixels)})
        labels = req.get_tensor(LABELS).data.copy()
        conf = req.get_tensor(CONFIDENCE).data.copy() if confidence else None
        return labels, conf
