"""ONNX Runtime backend: the cached ONNX export (:mod:`..onnx_artifacts`), CPU or CUDA
execution provider; int8 runs ONNX Runtime's calibrated QDQ copy of it on the CPU.
"""
from __future__ import annotations

import logging
import time
from typing import Dict, Optional, Tuple

import numpy as np
import torch

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
from ..quantize import RECIPE, quantize_onnx
from .base import Backend, BackendUnavailable, ModelSource, Outputs, physical_cores

__all__ = ["OnnxRuntimeBackend", "INT8_ARTIFACT"]

log = logging.getLogger(__name__)

#: Cache name of ONNX Runtime's calibrated int8 models (QDQ ONNX, see :mod:`..quantize`).
INT8_ARTIFACT = "mfaranet-onnx-int8"


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(f"onnxruntime is not installed ({exc}); "
                                 f"pip install onnxruntime") from None
    return onnxruntime


class OnnxRuntimeBackend(Backend):
    """One ONNX Runtime session per network input size; ``run`` takes numpy arrays."""

    name = "onnxruntime"
    array_type = "numpy"

    def __init__(self, source: ModelSource, device: Optional[str], precision: str = "fp32", *,
                 cache: CacheDir, threads: Optional[int] = None, calibration=None) -> None:
        ort = _import_ort()
        if device is None:  # auto: the CUDA provider where this onnxruntime build has one
            cuda_ep = "CUDAExecutionProvider" in ort.get_available_providers()
            device = "cuda" if cuda_ep and torch.cuda.is_available() else "cpu"
        super().__init__(source, device, precision)
        self._ort = ort
        if precision not in ("fp32", "int8"):
            raise BackendUnavailable("the onnxruntime backend runs fp32 and int8 (calibrated) "
                                     "only; use torch or tensorrt on a GPU for fp16")
        if precision == "int8" and device != "cpu":
            raise BackendUnavailable(f"int8 runs on the CPU execution provider, not {device!r}")
        available = ort.get_available_providers()
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise BackendUnavailable(f"device {device!r} needs onnxruntime's "
                                         f"CUDAExecutionProvider; this onnxruntime "
                                         f"{ort.__version__} has {available}")
            dev_id = int(device.split(":")[1]) if ":" in device else 0
            self.providers = [("CUDAExecutionProvider", {"device_id": dev_id}),
                              "CPUExecutionProvider"]
        else:
            self.providers = ["CPUExecutionProvider"]
        self.cache = cache
        self.threads = threads or physical_cores()
        self.calibration = calibration
        self._sessions: Dict[Tuple[int, int, bool], object] = {}
        self._paths: Dict[Tuple[int, int, bool], str] = {}
        if precision == "int8" and calibration is None:
            require_any_int8(self.int8_recipe(), source, cache.readable)

    def describe(self) -> str:
        first = self.providers[0]
        provider = first if isinstance(first, str) else first[0]
        return (f"{self.name} {self._ort.__version__} on {self.device} "
                f"({provider}, {self.threads} threads), {self.precision}")

    def _session_options(self):
        so = self._ort.SessionOptions()
        so.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        # One thread per physical core: hyper-threads only contend for the same FMA units.
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        return so

    def int8_recipe(self) -> Int8Recipe:
        """ONNX Runtime's int8: its quantizer, and its CPU sessions for the accuracy check."""
        import onnxruntime

        return Int8Recipe(
            backend=self.name, artifact=INT8_ARTIFACT,
            key_fields=lambda: {"artifact": "onnx-int8", "recipe": RECIPE,
                                "onnxruntime": onnxruntime.__version__},
            quantize=lambda proto, frames, classes: quantize_onnx(proto, frames, classes,
                                                                  input_name=INPUT),
            runner=self._labels_runner)

    def _labels_runner(self, model):
        session = self._ort.InferenceSession(model, self._session_options(),
                                             providers=["CPUExecutionProvider"])
        return lambda pixels: session.run([LABELS], {INPUT: pixels})[0]

    def session(self, height: int, width: int, confidence: bool = False):
        """The ONNX Runtime session for this input size (built on first use)."""
        hw = (int(height), int(width), bool(confidence))
        sess = self._sessions.get(hw)
        if sess is None:
            if self.precision == "int8":
                model, path = int8_onnx(self.int8_recipe(), self.source, self.cache, *hw,
                                        calibration=self.calibration)
            else:
                model, path = fp32_onnx(self.source, self.cache, *hw)
            sess = self._sessions[hw] = self._ort.InferenceSession(
                model, self._session_options(), providers=self.providers)
            if path is not None:
                self._paths[hw] = str(path)
        return sess

    def artifacts(self) -> Dict[Tuple, str]:
        return dict(self._paths)

    def prepare(self, batch: int, height: int, width: int, confidence: bool = False) -> float:
        t0 = time.perf_counter()
        self.session(height, width, confidence)
        return time.perf_counter() - t0

    def run(self, pixels: np.ndarray, confidence: bool = False) -> Outputs:
        """``(B, H, W, 3)`` uint8 numpy -> labels ``(B, H, W)`` uint8, confidence or None."""
        sess = self.session(pixels.shape[1], pixels.shape[2], confidence)
        pixels = np.ascontiguousarray(pixels)
        if confidence:
            labels, conf = sess.run([LABELS, CONFIDENCE], {INPUT: pixels})
            return labels, conf
        (labels,) = sess.run([LABELS], {INPUT: pixels})
        return labels, None


