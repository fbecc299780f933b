"""What differs between Torch-TensorRT releases, chosen by the installed version.

* 2.8 / 2.9 (2.8 is the Jetson Orin / JetPack 6.2 release): weakly typed networks, so fp16
  needs ``enabled_precisions={fp16, fp32}``; ``use_python_runtime=False`` selects the C++
  runtime, which ``save`` needs; ``save`` defaults to ``retrace=False``.
* 2.10 - 2.12: strongly typed by default (``use_explicit_typing=True``): precision follows the
  model's dtype and an ``enabled_precisions`` other than ``{fp32}`` is refused.
* 2.13: ``enabled_precisions`` and ``use_explicit_typing`` are gone from the dynamo path
  (ignored if passed), ``use_python_runtime`` is deprecated; ``save`` re-exports
  (``retrace=True``) from ``arg_inputs``.

Releases before 2.8 are refused: 2.6 and 2.7 run bilinear ``grid_sample`` as
nearest-neighbour (pytorch/TensorRT PR #3340), which would silently break the flow alignment.
"""
from __future__ import annotations

import importlib.util
import re
from typing import Any, Dict, Optional, Tuple

import torch

from .base import BackendUnavailable

__all__ = ["INSTALL_HINT", "MIN_TORCH_TENSORRT", "check_torch_tensorrt_version",
           "compile_settings", "dry_run_settings", "import_torch_tensorrt", "save_settings",
           "tensorrt_version", "torch_tensorrt_installed"]

MIN_TORCH_TENSORRT = (2, 8)
#: From this release on, networks are strongly typed by default (precision = model dtype).
_STRONGLY_TYPED_FROM = (2, 10)
#: From this release on, ``save`` re-exports the compiled module by default.
_SAVE_RETRACES_FROM = (2, 10)
#: From this release on, ``enabled_precisions`` / ``use_python_runtime`` are gone / deprecated.
_MERGED_RUNTIME_FROM = (2, 13)

INSTALL_HINT = ("install torch-tensorrt >= 2.8 built for your torch and CUDA (on a Jetson: "
                 "the JetPack wheel), or choose backend 'torch' or 'onnxruntime'")


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
        return f"torch_tensorrt is not installed ({exc}); {INSTALL_HINT}"
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


def import_torch_tensorrt():
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


def tensorrt_version() -> Optional[str]:
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
