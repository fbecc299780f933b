"""Torch-TensorRT backend (dynamo frontend, static shapes), with a fully keyed engine cache.

Every call whose signature changed between Torch-TensorRT releases is in this module.
Written against the 2.8 API (the last release for Jetson Orin / JetPack 6.2):
``torch_tensorrt.compile(module, ir="dynamo", arg_inputs=..., enabled_precisions=...)``,
``torch_tensorrt.save(gm, path, output_format="exported_program", arg_inputs=...)`` and
``torch_tensorrt.load(path).module()``. Releases before 2.8 are refused: 2.6 and 2.7 run
bilinear ``grid_sample`` as nearest-neighbour (pytorch/TensorRT PR #3340), which would
silently break the flow alignment.

TensorRT is not installable on the development machines: this module is exercised
there only up to the import check, the cache keys and the fallback.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..cache import ARTIFACT_FORMAT, CacheDir, lookup, store
from ..graph import SegmentationGraph
from .base import Backend, BackendUnavailable, ModelSource, Outputs, resolve_device

__all__ = ["TensorRTBackend", "MIN_TORCH_TENSORRT", "tensorrt_cache_key", "check_torch_tensorrt_version"]

log = logging.getLogger(__name__)

MIN_TORCH_TENSORRT = (2, 8)


def _version_tuple(version: str) -> Tuple[int, ...]:
    parts = re.findall(r"\d+", version.split("+")[0])[:3]
    return tuple(int(p) for p in parts)


def check_torch_tensorrt_version(version: str) -> None:
    """Raises BackendUnavailable for a torch-tensorrt older than 2.8 (the grid_sample bug)."""
    if _version_tuple(version)[:2] < MIN_TORCH_TENSORRT:
        raise BackendUnavailable(
            f"torch-tensorrt {version} is too old: >= {'.'.join(map(str, MIN_TORCH_TENSORRT))} is "
            f"required (2.6/2.7 silently run bilinear grid_sample as nearest-neighbour, breaking "
            f"MFARANet's flow alignment)")


def _import_torch_tensorrt():
    try:
        import torch_tensorrt
    except ImportError as exc:
        raise BackendUnavailable(
            f"torch_tensorrt is not installed ({exc}); install torch-tensorrt >= 2.8 matching your "
            f"torch and CUDA (on a Jetson: the JetPack wheels)") from None
    except OSError as exc:  # a wheel whose TensorRT / CUDA libraries are missing
        raise BackendUnavailable(f"torch_tensorrt failed to load its libraries: {exc}") from None
    check_torch_tensorrt_version(getattr(torch_tensorrt, "__version__", "0"))
    return torch_tensorrt


def _tensorrt_version() -> Optional[str]:
    try:
        import tensorrt
        return tensorrt.__version__
    except ImportError:
        return None


def tensorrt_cache_key(source: ModelSource, batch: int, height: int, width: int, precision: str,
                       confidence: bool, *, torch_tensorrt_version: str,
                       tensorrt_version: Optional[str], gpu_name: str,
                       compute_capability: Tuple[int, int]) -> Dict:
    """Everything a serialized engine depends on: a different value means a rebuild."""
    return {
        "format": ARTIFACT_FORMAT,
        "artifact": "torch_tensorrt/exported_program",
        "checkpoint_sha256": source.sha256,
        "pruned": source.pruned,
        "input_shape": [int(batch), int(height), int(width), 3],
        "precision": precision,
        "confidence": bool(confidence),
        "torch": torch.__version__,
        "torch_tensorrt": torch_tensorrt_version,
        "tensorrt": tensorrt_version,
        "gpu": gpu_name,
        "compute_capability": list(compute_capability),
    }


class TensorRTBackend(Backend):
    """One static-shape engine per (batch, height, width, confidence), cached on disk."""

    name = "tensorrt"

    def __init__(self, source: ModelSource, device: str, precision: str = "fp16", *,
                 cache: CacheDir) -> None:
        # The package first: "not installed" is the more useful reason than "no GPU".
        self._trt = _import_torch_tensorrt()
        if not str(device).startswith("cuda"):
            raise BackendUnavailable(f"TensorRT needs a CUDA device; got device {device!r}")
        device = resolve_device(device)
        super().__init__(source, device, precision)
        self.cache = cache
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        index = torch.device(device).index or 0
        self.gpu_name = torch.cuda.get_device_name(index)
        self.capability = tuple(torch.cuda.get_device_capability(index))
        self._modules: Dict[Tuple, torch.nn.Module] = {}
        self._paths: Dict[Tuple, str] = {}

    def describe(self) -> str:
        return f"{self.name} (torch-tensorrt {self._trt.__version__}) on {self.device} [{self.gpu_name}], {self.precision}"

    def key(self, batch: int, height: int, width: int, confidence: bool) -> Dict:
        return tensorrt_cache_key(
            self.source, batch, height, width, self.precision, confidence,
            torch_tensorrt_version=self._trt.__version__, tensorrt_version=_tensorrt_version(),
            gpu_name=self.gpu_name, compute_capability=self.capability)

    def _example(self, batch: int, height: int, width: int) -> torch.Tensor:
        # The engine takes pixels already cast to the compute dtype (NHWC, 0..255): uint8
        # engine inputs are not supported by every TensorRT release.
        return torch.zeros((batch, height, width, 3), dtype=self.dtype, device=self.device)

    def _compile(self, batch: int, height: int, width: int, confidence: bool) -> torch.nn.Module:
        meta = self.source.metadata
        model = self.source.load_model().to(self.device, dtype=self.dtype)
        graph = SegmentationGraph(model, meta.mean, meta.std, confidence=confidence,
                                  compute_dtype=self.dtype, label_dtype=torch.int32).eval()
        example = self._example(batch, height, width)
        precisions = {torch.float16, torch.float32} if self.precision == "fp16" else {torch.float32}
        with torch.no_grad():
            return self._trt.compile(
                graph, ir="dynamo", arg_inputs=[example], enabled_precisions=precisions,
                device=torch.device(self.device), min_block_size=1,
                # The C++ runtime: needed to save the result as an ExportedProgram.
                use_python_runtime=False,
            )

    def module(self, batch: int, height: int, width: int, confidence: bool) -> torch.nn.Module:
        shape = (int(batch), int(height), int(width), bool(confidence))
        mod = self._modules.get(shape)
        if mod is not None:
            return mod
        key = self.key(*shape)
        directory = self.cache.path or (self.cache.requested if self.cache.requested.is_dir() else None)
        path, why = lookup(directory, "mfaranet-trt", key, "ep")
        mod = None
        if path is not None:
            log.info("loading cached TensorRT engine %s", path)
            try:
                mod = self._trt.load(str(path)).module()
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                # e.g. an engine serialized by another TensorRT build: rebuild, never trust it
                why = f"cached engine {path.name} failed to load ({type(exc).__name__}: {exc})"
                log.warning("%s; rebuilding", why)
                path = None
        if mod is None:
            where = self.cache.path or "memory only (cache directory not writable)"
            log.info("building the TensorRT engine for %s, %dx%dx%d, %s on %s (%s); this can take "
                     "minutes; cached at %s", self.source.describe(), batch, height, width,
                     self.precision, self.gpu_name, why, where)
            t0 = time.perf_counter()
            mod = self._compile(*shape)
            if self.cache.path is not None:
                example = self._example(batch, height, width)
                path = store(self.cache.path, "mfaranet-trt", key, "ep",
                             lambda p: self._trt.save(mod, str(p), output_format="exported_program",
                                                      arg_inputs=[example]))
                self._paths[shape] = str(path)
            log.info("built the TensorRT engine in %.1f s%s", time.perf_counter() - t0,
                     f": {path}" if path is not None else "")
        if path is not None:
            self._paths[shape] = str(path)
        self._modules[shape] = mod
        return mod

    def artifacts(self) -> Dict[Tuple, str]:
        return dict(self._paths)

    def prepare(self, batch: int, height: int, width: int, confidence: bool = False) -> float:
        t0 = time.perf_counter()
        self.module(batch, height, width, confidence)
        return time.perf_counter() - t0

    array_type = "torch"

    @torch.inference_mode()
    def run(self, pixels: torch.Tensor, confidence: bool = False) -> Outputs:
        """``(B, H, W, 3)`` uint8 tensor on the GPU -> uint8 labels, float confidence or None."""
        b, h, w, _ = pixels.shape
        mod = self.module(b, h, w, confidence)
        out = mod(pixels.to(self.dtype).contiguous())
        if confidence:
            labels, conf = out
            return labels.to(torch.uint8), conf.float()
        labels = out[0] if isinstance(out, (tuple, list)) else out
        return labels.to(torch.uint8), None
