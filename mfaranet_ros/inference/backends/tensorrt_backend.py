"""Torch-TensorRT backend (dynamo frontend, static shapes), with a fully keyed engine cache.

``torch_tensorrt.dynamo.compile(exported_program, arg_inputs=[Input(...)], ...)``,
``save(module, path, output_format="exported_program", ...)`` and ``load(path).module()``
are common to every supported release; what differs between releases is in
:mod:`.tensorrt_compat`, the dry run's report in :mod:`.tensorrt_report`. The graph is
exported once with ``torch.export.export`` (what ``torch_tensorrt.compile(ir="dynamo")``
does inside), so a dry run (:meth:`EngineBuild.dry_run`) checks exactly the program a
build compiles.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from ...names import DEFAULT_PRECISION
from ..cache import ARTIFACT_FORMAT, CacheDir, lookup, store
from ..graph import SegmentationGraph
from .base import Backend, BackendUnavailable, ModelSource, Outputs, resolve_device
from .tensorrt_compat import (
    INSTALL_HINT,
    compile_settings,
    dry_run_settings,
    import_torch_tensorrt,
    save_settings,
    tensorrt_version,
    torch_tensorrt_installed,
)
from .tensorrt_report import ConversionReport

__all__ = ["TensorRTBackend", "EngineBuild", "EngineBuildError", "build_and_store",
           "tensorrt_cache_key"]

log = logging.getLogger(__name__)


class EngineBuildError(BackendUnavailable):
    """A TensorRT build (or its save) failed; the message names the shape and precision."""



# ----------------------------------------------------------------------------- one build

@dataclass(frozen=True)
class EngineBuild:
    """One static-shape engine: the graph TensorRT compiles, its input, the call arguments.

    The backend builds from it, and so do the dry run of ``mfaranet build-engine`` and the
    convertibility tests: all three see the same program. ``device`` is where the graph is
    built; TensorRT's target is always a CUDA device (``cuda:0`` when ``device`` is the CPU,
    for a dry run).
    """

    source: ModelSource
    batch: int
    height: int
    width: int
    precision: str = DEFAULT_PRECISION
    confidence: bool = False
    device: str = "cuda"

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.precision == "fp16" else torch.float32

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        """``(B, H, W, 3)``: NHWC pixels on the 0..255 scale, in :attr:`dtype`."""
        return (int(self.batch), int(self.height), int(self.width), 3)

    @property
    def target_device(self) -> str:
        return str(self.device) if str(self.device).startswith("cuda") else "cuda:0"

    def describe(self) -> str:
        b, h, w, _ = self.input_shape
        return (f"{self.source.describe()}, input {b}x{h}x{w}x3, {self.precision}"
                f"{', with confidence' if self.confidence else ''}")

    def graph(self) -> SegmentationGraph:
        """The wrapped model: ``(B, H, W, 3)`` pixels -> int32 labels ``(B, H, W)`` [+ conf]."""
        meta = self.source.metadata
        model = self.source.load_model().to(self.device, dtype=self.dtype)
        # int32 labels: not every TensorRT release has uint8 engine outputs.
        return SegmentationGraph(model, meta.mean, meta.std, confidence=self.confidence,
                                 compute_dtype=self.dtype, label_dtype=torch.int32).eval()

    def example(self) -> torch.Tensor:
        # Pixels already cast to the compute dtype: uint8 engine inputs are not supported by
        # every TensorRT release.
        return torch.zeros(self.input_shape, dtype=self.dtype, device=self.device)

    def export(self, graph: Optional[torch.nn.Module] = None) -> torch.export.ExportedProgram:
        """The program TensorRT compiles (``graph`` defaults to :meth:`graph`)."""
        graph = self.graph() if graph is None else graph
        with torch.no_grad():
            return torch.export.export(graph, (self.example(),), strict=False)

    def arg_inputs(self, trt) -> List[Any]:
        return [trt.Input(shape=self.input_shape, dtype=self.dtype)]

    def compile(self, trt, program: Optional[torch.export.ExportedProgram] = None):
        """Builds the engine (minutes on a Jetson); returns the compiled module."""
        program = self.export() if program is None else program
        settings = compile_settings(trt.__version__, self.precision, self.target_device)
        with torch.no_grad():
            return trt.dynamo.compile(program, arg_inputs=self.arg_inputs(trt), **settings)

    def dry_run(self, trt, program: Optional[torch.export.ExportedProgram] = None
                ) -> "ConversionReport":
        """Everything :meth:`compile` does except building engines: what converts, what not."""
        program = self.export() if program is None else program
        settings = dry_run_settings(trt.__version__, self.precision, self.target_device)
        with torch.no_grad():
            partitioned = trt.dynamo.compile(program, arg_inputs=self.arg_inputs(trt), **settings)
        return ConversionReport.from_partitioned(trt, partitioned)

    def save(self, trt, module: torch.nn.Module, path: Path) -> None:
        trt.save(module, str(path), **save_settings(trt.__version__, self.example()))


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


def _build_failure(build: EngineBuild, step: str, exc: BaseException) -> EngineBuildError:
    """A build error that says which engine failed, why, and what to try."""
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        fix = ("free GPU memory, or use a smaller input_size or batch (or fp16); TensorRT also "
               "needs workspace memory while it builds")
    else:
        fix = (f"run `mfaranet build-engine --backend tensorrt --dry-run --precision "
               f"{build.precision} ...` to see which op does not convert, or choose backend "
               f"'torch'")
    return EngineBuildError(f"{step} the TensorRT engine for {build.describe()} failed "
                            f"({type(exc).__name__}: {exc}); nothing was cached; {fix}")


def build_and_store(trt, build: EngineBuild, key: Dict, directory: Optional[Path]
                    ) -> Tuple[torch.nn.Module, Optional[Path]]:
    """Compiles ``build`` and, when ``directory`` is set, caches it under ``key``.

    A failed compile or save raises :class:`EngineBuildError` and leaves no entry: the
    artifact is written to a temporary file and published with its manifest only when
    complete (:func:`~mfaranet_ros.inference.cache.store`).
    """
    try:
        module = build.compile(trt)
    except Exception as exc:  # noqa: BLE001 - converters raise anything, AssertionError to OOM
        raise _build_failure(build, "building", exc) from exc
    if directory is None:
        return module, None
    try:
        path = store(directory, "mfaranet-trt", key, "ep",
                     lambda p: build.save(trt, module, p))
    except Exception as exc:  # noqa: BLE001 - the exporter behind save raises anything too
        raise _build_failure(build, "saving", exc) from exc
    return module, path


class TensorRTBackend(Backend):
    """One static-shape engine per (batch, height, width, confidence), cached on disk."""

    name = "tensorrt"

    def __init__(self, source: ModelSource, device: str, precision: str = DEFAULT_PRECISION, *,
                 cache: CacheDir) -> None:
        # "Not installed" is the more useful reason than "no GPU", and finding that out costs
        # no import. The import itself (seconds) is tried only where a GPU can use it.
        if not torch_tensorrt_installed():
            raise BackendUnavailable(f"torch_tensorrt is not installed; {INSTALL_HINT}")
        if not str(device).startswith("cuda"):
            raise BackendUnavailable(f"TensorRT needs a CUDA device; got device {device!r}")
        device = resolve_device(device)
        self._trt = import_torch_tensorrt()
        super().__init__(source, device, precision)
        self.cache = cache
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        index = torch.device(device).index or 0
        self.gpu_name = torch.cuda.get_device_name(index)
        self.capability = tuple(torch.cuda.get_device_capability(index))
        self._modules: Dict[Tuple, torch.nn.Module] = {}
        self._paths: Dict[Tuple, str] = {}

    def describe(self) -> str:
        return (f"{self.name} (torch-tensorrt {self._trt.__version__}) on {self.device} "
                f"[{self.gpu_name}], {self.precision}")

    def key(self, batch: int, height: int, width: int, confidence: bool) -> Dict:
        return tensorrt_cache_key(
            self.source, batch, height, width, self.precision, confidence,
            torch_tensorrt_version=self._trt.__version__, tensorrt_version=tensorrt_version(),
            gpu_name=self.gpu_name, compute_capability=self.capability)

    def build(self, batch: int, height: int, width: int, confidence: bool) -> EngineBuild:
        """What the engine for this shape is compiled from (also what a dry run checks)."""
        return EngineBuild(self.source, batch, height, width, self.precision, confidence,
                           self.device)

    def _load_cached(self, path: Path) -> Tuple[Optional[torch.nn.Module], str]:
        log.info("loading cached TensorRT engine %s", path)
        try:
            return self._trt.load(str(path)).module(), ""
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            # e.g. an engine serialized by another TensorRT build: rebuild, never trust it
            why = f"cached engine {path.name} failed to load ({type(exc).__name__}: {exc})"
            log.warning("%s; rebuilding", why)
            return None, why

    def module(self, batch: int, height: int, width: int, confidence: bool) -> torch.nn.Module:
        shape = (int(batch), int(height), int(width), bool(confidence))
        mod = self._modules.get(shape)
        if mod is not None:
            return mod
        key = self.key(*shape)
        path, why = lookup(self.cache.readable, "mfaranet-trt", key, "ep")
        if path is not None:
            mod, why = self._load_cached(path)
        if mod is None:
            build = self.build(*shape)
            log.info("building the TensorRT engine for %s on %s (%s); this can take minutes; "
                     "cached at %s", build.describe(), self.gpu_name, why,
                     self.cache.path or "memory only (cache directory not writable)")
            t0 = time.perf_counter()
            mod, path = build_and_store(self._trt, build, key, self.cache.path)
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
