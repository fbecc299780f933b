"""torch-tensorrt's converters on a CPU-only torch, for the convertibility tests.

``torch-tensorrt-rtx`` (installed by ``scripts/test.sh`` where torch has no CUDA) carries the
same Python sources as torch-tensorrt: lowering passes, partitioner, converter registry and
validators. Its import touches the GPU four times, and a dry run once more; these patches
answer those calls, for the duration of the import or the dry run only:

* ``torch.cuda.get_device_capability`` (``_utils.is_thor()`` at import);
* ``torch.cuda.current_device`` (``dynamo._defaults.default_device()``, at import and as the
  default of every ``CompilationSettings``);
* ``torch._C._CudaDeviceProperties``, missing from a CPU build, named in annotations;
* the package's ``lib/libtorchtrt*.so``, which link ``libtorch_cuda.so``: hidden from
  ``os.path.isfile`` during the import, so torch-tensorrt selects its Python-only runtime.

These patches belong here, never in the package. Where torch has CUDA, nothing is patched.
"""
from __future__ import annotations

import contextlib
import os
from types import ModuleType
from typing import Iterator
from unittest import mock

import torch

__all__ = ["import_torch_tensorrt", "on_cpu"]


class _NoCudaDeviceProperties:
    """Stands for ``torch._C._CudaDeviceProperties`` in annotations; never instantiated."""


def _hide_torchtrt_libraries(real_isfile):
    def isfile(path) -> bool:
        if os.path.basename(os.fspath(path)).startswith("libtorchtrt"):
            return False
        return real_isfile(path)
    return isfile


@contextlib.contextmanager
def on_cpu() -> Iterator[None]:
    """While active, torch-tensorrt's device queries get answers on a CPU-only torch."""
    if torch.cuda.is_available():
        yield
        return
    added = not hasattr(torch._C, "_CudaDeviceProperties")
    if added:
        torch._C._CudaDeviceProperties = _NoCudaDeviceProperties
    try:
        with mock.patch("torch.cuda.get_device_capability", lambda *_, **__: (0, 0)), \
                mock.patch("torch.cuda.current_device", lambda: 0), \
                mock.patch("os.path.isfile", _hide_torchtrt_libraries(os.path.isfile)):
            yield
    finally:
        if added:
            del torch._C._CudaDeviceProperties


def import_torch_tensorrt() -> ModuleType:
    """``torch_tensorrt`` (imported under :func:`on_cpu`); ImportError if it is not installed."""
    with on_cpu():
        import torch_tensorrt
    return torch_tensorrt
