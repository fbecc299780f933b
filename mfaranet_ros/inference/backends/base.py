"""The interface every backend implements, and what they share: the checkpoint source."""
from __future__ import annotations

import abc
import logging
import os
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from ...model import ModelMetadata, load_checkpoint, read_checkpoint
from ...names import (  # noqa: F401 (PRECISIONS and DEFAULT_PRECISION: re-exported)
    BACKEND_PRECISIONS,
    DEFAULT_PRECISION,
    PRECISIONS,
    check_precision_name,
)
from ..cache import checkpoint_sha256

__all__ = ["ARRAY_TYPES", "Backend", "BackendUnavailable", "ModelSource", "Outputs", "PRECISIONS",
           "BACKEND_PRECISIONS", "check_precision", "physical_cores", "resolve_device"]

log = logging.getLogger(__name__)


def physical_cores() -> int:
    """The CPU backends' default thread count: hyper-threads only contend for the same
    FMA units."""
    try:
        import psutil
        n = psutil.cpu_count(logical=False)
    except ImportError:
        n = None
    return max(1, n or os.cpu_count() or 1)


def check_precision(backend: str, precision: str) -> None:
    """Raises ValueError for an unknown precision and :class:`BackendUnavailable` when
    ``backend`` cannot run ``precision``, naming what it can and who runs that precision."""
    check_precision_name(precision)
    supported = BACKEND_PRECISIONS.get(backend)
    if supported is not None and precision not in supported:
        users = [b for b, precs in BACKEND_PRECISIONS.items() if precision in precs]
        raise BackendUnavailable(
            f"backend {backend!r} runs {', '.join(supported)}, not {precision}; "
            f"{precision} runs on {', '.join(users)}")
#: What a backend's ``run`` takes and returns: numpy arrays, or torch tensors on its device.
ARRAY_TYPES = ("numpy", "torch")
Array = Union[np.ndarray, torch.Tensor]
#: labels ``(B, H, W)`` uint8 and confidence ``(B, H, W)`` float32 or None
Outputs = Tuple[Array, Optional[Array]]


class BackendUnavailable(RuntimeError):
    """A backend that cannot run here; the message says why (missing package, no GPU...)."""


def resolve_device(device: Optional[str]) -> str:
    """``None`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; validates the rest."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    dev = str(device)
    if dev == "cpu":
        return dev
    if dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit()):
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"device {dev!r} requested but torch sees no CUDA device "
                                     f"(torch {torch.__version__}, "
                                     f"CUDA build: {torch.version.cuda})")
        return dev
    raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N'; got {device!r}")


class ModelSource:
    """A checkpoint read once: metadata and hash now, the model only when a backend needs it."""

    def __init__(self, weights: Union[str, os.PathLike], pruned: bool = False) -> None:
        self.path = os.fspath(weights)
        self.pruned = bool(pruned)
        self.metadata: ModelMetadata = read_checkpoint(self.path).metadata
        if self.metadata.num_classes > 255:
            raise ValueError(f"{self.path!r}: {self.metadata.num_classes} classes do not fit "
                             f"uint8 labels (at most 255)")
        self._sha256: Optional[str] = None

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = checkpoint_sha256(self.path)
        return self._sha256

    def load_model(self) -> torch.nn.Module:
        """A fresh CPU fp32 MFARANet in eval mode (full or pruned), loaded strictly."""
        return load_checkpoint(self.path, pruned=self.pruned, device="cpu")

    def describe(self) -> str:
        return f"{os.path.basename(self.path)}{' (pruned)' if self.pruned else ''}"


class Backend(abc.ABC):
    """Runs :class:`~mfaranet_ros.inference.graph.SegmentationGraph` on uint8 NHWC batches.

    :meth:`run` takes and returns arrays of one type, :attr:`array_type`: ``"numpy"``
    (host memory; the Segmenter then processes frames with numpy / OpenCV) or
    ``"torch"`` (tensors on :attr:`device`; processed as torch ops on that device,
    or on the host when the device is the CPU).
    """

    name: str = "?"
    #: The array type :meth:`run` takes and returns: one of :data:`ARRAY_TYPES`.
    array_type: str = "numpy"

    def __init__(self, source: ModelSource, device: str, precision: str) -> None:
        check_precision_name(precision)
        self.source = source
        self.device = device
        self.precision = precision

    @abc.abstractmethod
    def prepare(self, batch: int, height: int, width: int, confidence: bool = False) -> float:
        """Builds or loads what a ``(batch, height, width)`` input needs; returns seconds spent."""

    @abc.abstractmethod
    def run(self, pixels: Array, confidence: bool = False) -> Outputs:
        """``(B, H, W, 3)`` uint8 RGB -> labels ``(B, H, W)`` uint8 and confidence
        ``(B, H, W)`` float32 (max softmax probability) or None.

        All in :attr:`array_type`; torch tensors on :attr:`device`.
        """

    def artifacts(self) -> Dict[Tuple, str]:
        """Cached files in use, by shape (empty for backends that keep none)."""
        return {}

    def describe(self) -> str:
        return f"{self.name} on {self.device}, {self.precision}"
