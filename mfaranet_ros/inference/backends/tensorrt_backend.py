"""Torch-TensorRT backend (dynamo frontend, static shapes), with a fully keyed engine cache.

Every call that differs between Torch-TensorRT releases is in this module, chosen by the
installed version (:func:`compile_settings`, :func:`save_settings`):

* 2.8 / 2.9 (2.8 is the Jetson Orin / JetPack 6.2 release): weakly typed networks, so fp16
  needs ``enabled_precisions={fp16, fp32}``; ``use_python_runtime=False`` selects the C++
  runtime, which ``save`` needs; ``save`` defaults to ``retrace=False``.
* 2.10 - 2.12: strongly typed by default (``use_explicit_typing=True``): precision follows the
  model's dtype and an ``enabled_precisions`` other than ``{fp32}`` is refused.
* 2.13: ``enabled_precisions`` and ``use_explicit_typing`` are gone from the dynamo path
  (ignored if passed), ``use_python_runtime`` is deprecated; ``save`` re-exports
  (``retrace=True``) from ``arg_inputs``.

``torch_tensorrt.dynamo.compile(exported_program, arg_inputs=[Input(...)], ...)``,
``save(module, path, output_format="exported_program", ...)`` and ``load(path).module()``
are common to all. The graph is exported once with ``torch.export.export`` (what
``torch_tensorrt.compile(ir="dynamo")`` does inside), so a dry run (:meth:`EngineBuild.
dry_run`) checks exactly the program a build compiles. Releases before 2.8 are refused: 2.6
and 2.7 run bilinear ``grid_sample`` as nearest-neighbour (pytorch/TensorRT PR #3340), which
would silently break the flow alignment.
"""
from __future__ import annotations

import importlib.util
import logging
import operator
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..cache import ARTIFACT_FORMAT, CacheDir, lookup, store
from ..graph import SegmentationGraph
from .base import Backend, BackendUnavailable, ModelSource, Outputs, resolve_device

__all__ = ["TensorRTBackend", "EngineBuild", "EngineBuildError", "ConversionReport", "OpCoverage",
           "MIN_TORCH_TENSORRT", "build_and_store", "check_torch_tensorrt_version",
           "compile_settings", "dry_run_settings", "save_settings", "tensorrt_cache_key",
           "torch_tensorrt_installed"]

log = logging.getLogger(__name__)

MIN_TORCH_TENSORRT = (2, 8)
#: From this release on, networks are strongly typed by default (precision = model dtype).
_STRONGLY_TYPED_FROM = (2, 10)
#: From this release on, ``save`` re-exports the compiled module by default.
_SAVE_RETRACES_FROM = (2, 10)
#: From this release on, ``enabled_precisions`` / ``use_python_runtime`` are gone / deprecated.
_MERGED_RUNTIME_FROM = (2, 13)

_INSTALL_HINT = ("install torch-tensorrt >= 2.8 built for your torch and CUDA (on a Jetson: "
                 "the JetPack wheel), or choose backend 'torch' or 'onnxruntime'")


class EngineBuildError(BackendUnavailable):
    """A TensorRT build (or its save) failed; the message names the shape and precision."""


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


# ----------------------------------------------------------------------------- import

def torch_tensorrt_installed() -> bool:
    """Whether a ``torch_tensorrt`` package is present, without importing it (cheap)."""
    try:
        return importlib.util.find_spec("torch_tensorrt") is not None
    except (ImportError, ValueError):  # a broken parent package or a module without a spec
        return True


def _import_failure(exc: BaseException) -> str:
    """Why ``import torch_tensorrt`` failed, and what to do about it, in one sentence."""
    what = f"{type(exc).__name__}: {exc}"
    cuda = torch.version.cuda
    if isinstance(exc, ModuleNotFoundError) and exc.name == "torch_tensorrt":
        return f"torch_tensorrt is not installed ({exc}); {_INSTALL_HINT}"
    if isinstance(exc, OSError) or re.search(r"lib\w*\.so", str(exc)):
        return (f"torch_tensorrt cannot load the TensorRT / CUDA libraries ({what}); install the "
                f"TensorRT release your torch-tensorrt was built against (pip: the tensorrt "
                f"wheel it requires; Jetson: JetPack's TensorRT) and check LD_LIBRARY_PATH")
    if isinstance(exc, ImportError):
        return (f"torch_tensorrt is installed but does not import ({what}): it does not match "
                f"torch {torch.__version__} (CUDA {cuda}); reinstall the torch-tensorrt release "
                f"made for this torch")
    if cuda is None:
        return (f"torch_tensorrt cannot run on torch {torch.__version__}, a build without CUDA "
                f"({what}); install a CUDA build of torch, then the matching torch-tensorrt")
    return (f"torch_tensorrt failed to import ({what}); reinstall torch-tensorrt for torch "
            f"{torch.__version__} (CUDA {cuda})")


#: The reason of a failed import, kept: a second import of a half-initialised native
#: package gives a different, misleading error (and costs seconds again).
_import_failed: Optional[str] = None


def _import_torch_tensorrt():
    """``torch_tensorrt``, or BackendUnavailable saying why not and what to do.

    Any exception is possible here: ImportError, OSError, a bare Exception ("Could not find
    libnvinfer.so"), AssertionError (a CPU-only torch)... All of them mean "no TensorRT", and
    ``backend: auto`` must be able to fall back.
    """
    global _import_failed
    if _import_failed is not None:
        raise BackendUnavailable(_import_failed)
    try:
        import torch_tensorrt
    except Exception as exc:  # noqa: BLE001 - see the docstring; re-raised as one type
        _import_failed = _import_failure(exc)
        raise BackendUnavailable(_import_failed) from None
    check_torch_tensorrt_version(getattr(torch_tensorrt, "__version__", "0"))
    return torch_tensorrt


def _tensorrt_version() -> Optional[str]:
    try:
        import tensorrt
        return tensorrt.__version__
    except ImportError:
        return None


# ----------------------------------------------------------------------------- versions

def compile_settings(version: str, precision: str, device: str) -> Dict[str, Any]:
    """Keyword arguments of ``torch_tensorrt.dynamo.compile`` for torch-tensorrt ``version``.

    The graph is already in the compute dtype (fp16 weights and activations for ``fp16``).
    """
    v = _version_tuple(version)[:2]
    settings: Dict[str, Any] = {"device": device, "min_block_size": 1}
    if v < _STRONGLY_TYPED_FROM:
        # Weakly typed: TensorRT may pick fp16 kernels only where enabled.
        settings["enabled_precisions"] = ({torch.float16, torch.float32} if precision == "fp16"
                                          else {torch.float32})
    if v < _MERGED_RUNTIME_FROM:
        # The C++ runtime: needed to save the result as an ExportedProgram.
        settings["use_python_runtime"] = False
    return settings


def save_settings(version: str, example: torch.Tensor) -> Dict[str, Any]:
    """Keyword arguments of ``torch_tensorrt.save`` (ExportedProgram) for ``version``."""
    if _version_tuple(version)[:2] < _SAVE_RETRACES_FROM:
        # The graph-surgery exporter; it needs no inputs (passing some only warns).
        return {"output_format": "exported_program", "retrace": False}
    return {"output_format": "exported_program", "retrace": True, "arg_inputs": [example]}


def dry_run_settings(version: str, precision: str, device: str) -> Dict[str, Any]:
    """:func:`compile_settings` plus what a dry run needs: no engine, every node reported."""
    settings = compile_settings(version, precision, device)
    # The global partitioner lists what is left to PyTorch (the fast one moves tensors to
    # CUDA first); the weights stay on the host since no engine is built.
    settings.update(dryrun=True, use_fast_partitioner=False, offload_module_to_cpu=True)
    return settings


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
    precision: str = "fp16"
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


# ----------------------------------------------------------------------------- dry run

@dataclass
class OpCoverage:
    """Nodes of one ATen op that share a converter (``None``: no converter accepts them)."""

    op: str
    count: int
    converter: Optional[str]


@dataclass
class ConversionReport:
    """What a dry run found: the op coverage, the TensorRT engines, what PyTorch would run."""

    ops: List[OpCoverage]
    #: Number of ops in each TensorRT engine, in graph order.
    engine_ops: List[int]
    #: Nodes outside every engine: they would run in PyTorch, between engines.
    left_to_torch: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(o.count for o in self.ops)

    @property
    def convertible(self) -> int:
        return sum(o.count for o in self.ops if o.converter is not None)

    @property
    def engines(self) -> int:
        return len(self.engine_ops)

    @property
    def fully_converted(self) -> bool:
        """Every op convertible, one engine, nothing left to PyTorch."""
        return self.convertible == self.total and self.engines == 1 and not self.left_to_torch

    def summary(self) -> str:
        pct = 100.0 * self.convertible / max(1, self.total)
        return (f"{self.convertible}/{self.total} ops convertible ({pct:.1f} %), "
                f"{self.engines} TensorRT engine{'s' if self.engines != 1 else ''}, "
                f"{len(self.left_to_torch)} node{'s' if len(self.left_to_torch) != 1 else ''} "
                f"left to PyTorch")

    def table(self) -> str:
        """``op | count | converter`` as a Markdown table, most frequent op first."""
        rows = ["| op | count | converter |", "|---|---:|---|"]
        for o in sorted(self.ops, key=lambda o: (-o.count, o.op, o.converter or "")):
            rows.append(f"| `{o.op}` | {o.count} | {o.converter or '**none: runs in PyTorch**'} |")
        return "\n".join(rows)

    @classmethod
    def from_partitioned(cls, trt, partitioned: torch.fx.GraphModule) -> "ConversionReport":
        """Reads a dry run's result: ``_run_on_acc_N`` submodules become engines."""
        registry = trt.dynamo.conversion._ConverterRegistry.DYNAMO_CONVERTERS
        counts: Counter = Counter()  # (op, converter) -> nodes
        engine_ops: List[int] = []
        left: List[str] = []

        def tally(node: torch.fx.Node) -> str:
            name = _op_name(node.target)
            counts[(name, _converter_name(registry, node))] += 1
            return f"{name} ({node.name})"

        for child_name, child in partitioned.named_children():
            if not isinstance(child, torch.fx.GraphModule):
                continue
            nodes = _compute_nodes(child.graph)
            if child_name.startswith("_run_on_acc"):
                engine_ops.append(len(nodes))
                for node in nodes:
                    tally(node)
            else:  # the fast partitioner's PyTorch submodules
                left.extend(tally(node) for node in nodes)
        top = [n for n in _compute_nodes(partitioned.graph)
               if not (n.op == "call_module" or n.target is operator.getitem)]
        left.extend(tally(node) for node in top)
        ops = [OpCoverage(op, n, converter) for (op, converter), n in counts.items()]
        return cls(ops, engine_ops, left)


def _compute_nodes(graph: torch.fx.Graph) -> List[torch.fx.Node]:
    return [n for n in graph.nodes if n.op in ("call_function", "call_method", "call_module")]


def _op_name(target: Any) -> str:
    """``aten.convolution.default`` for ``torch.ops.aten.convolution.default``."""
    if isinstance(target, str):
        return target
    name = str(target) if isinstance(target, torch._ops.OpOverload) else getattr(
        target, "__name__", str(target))
    return name.removeprefix("torch.ops.")


def _converter_name(registry, node: torch.fx.Node) -> Optional[str]:
    """The converter TensorRT would use for ``node`` (validators applied), or None."""
    try:
        implementation = registry[node][0]
    except KeyError:
        return None
    return getattr(implementation, "__name__", repr(implementation))


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

    def __init__(self, source: ModelSource, device: str, precision: str = "fp16", *,
                 cache: CacheDir) -> None:
        # "Not installed" is the more useful reason than "no GPU", and finding that out costs
        # no import. The import itself (seconds) is tried only where a GPU can use it.
        if not torch_tensorrt_installed():
            raise BackendUnavailable(f"torch_tensorrt is not installed; {_INSTALL_HINT}")
        if not str(device).startswith("cuda"):
            raise BackendUnavailable(f"TensorRT needs a CUDA device; got device {device!r}")
        device = resolve_device(device)
        self._trt = _import_torch_tensorrt()
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
            torch_tensorrt_version=self._trt.__version__, tensorrt_version=_tensorrt_version(),
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
        requested = self.cache.requested
        directory = self.cache.path or (requested if requested.is_dir() else None)
        path, why = lookup(directory, "mfaranet-trt", key, "ep")
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
