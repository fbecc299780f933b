"""The Segmenter: uint8 RGB frames in, labels / colour / overlay / confidence out, any backend."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..model import ModelMetadata
from .backends import BACKENDS, PRECISIONS, Backend, ModelSource, create_backend, resolve_device
from .cache import resolve_cache_dir
from .device_processing import DeviceProcessing
from .processing import (
    Letterbox, blend, check_frame, colorize, letterbox_geometry, letterbox_into, palette_lut,
    restore_confidence, restore_labels,
)

__all__ = ["Segmenter", "SegmentationResult"]

log = logging.getLogger(__name__)


@dataclass
class SegmentationResult:
    """One frame's outputs, all at the frame's own (source) size.

    ``labels`` (H, W) uint8 trainIds; ``color`` (H, W, 3) uint8 RGB; ``overlay``
    (H, W, 3) uint8 RGB; ``confidence`` (H, W) float32 max softmax probability;
    ``timings`` in milliseconds: ``preprocess``, ``inference``, ``postprocess`` (and
    ``batch_size`` for results of :meth:`Segmenter.segment_batch`).
    """

    labels: np.ndarray
    color: Optional[np.ndarray] = None
    overlay: Optional[np.ndarray] = None
    confidence: Optional[np.ndarray] = None
    timings: Dict[str, float] = field(default_factory=dict)


def _check_input_size(input_size) -> Optional[Tuple[int, int]]:
    if input_size is None:
        return None
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be None or (H, W), got {input_size!r}") from None
    if h < 32 or w < 32:
        raise ValueError(f"input_size must be at least 32x32 (the encoder downsamples 32x), got {h}x{w}")
    return h, w


def _with_timings(results: List[SegmentationResult], t0: float, t1: float, t2: float,
                  t3: float) -> List[SegmentationResult]:
    """Gives each result of one batch the batch's stage times (ms) and size."""
    timings = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
               "postprocess": (t3 - t2) * 1e3, "batch_size": len(results)}
    for r in results:
        r.timings = dict(timings)
    return results


class Segmenter:
    """Runs MFARANet on frames through one backend.

    Build it with :meth:`from_checkpoint`. ``input_size=None`` runs every frame at its
    full resolution (one compiled artifact per frame size for the ONNX / TensorRT
    backends); ``input_size=(H, W)`` letterboxes every frame into that network input,
    keeping its aspect ratio (see :mod:`mfaranet_ros.inference.processing`), and maps
    the labels back to the frame's own size.
    """

    def __init__(self, backend: Backend, metadata: ModelMetadata,
                 input_size: Optional[Tuple[int, int]] = None,
                 device_processing: Optional[bool] = None) -> None:
        self._backend = backend
        self.metadata = metadata
        self.input_size = _check_input_size(input_size)
        self._lut = palette_lut(metadata.palette)
        # Letterbox padding = the normalisation mean, which the graph maps to ~0.
        self._fill = np.clip(np.round(np.asarray(metadata.mean, np.float64)), 0, 255).astype(np.uint8)
        if device_processing is None:
            device_processing = backend.supports_tensors and backend.device.startswith("cuda")
        if device_processing and not backend.supports_tensors:
            raise ValueError(f"backend {backend.name} has no device-side processing path")
        self._device_proc = (DeviceProcessing(backend.device, self._lut, self._fill)
                             if device_processing else None)

    @classmethod
    def from_checkpoint(cls, weights: Union[str, os.PathLike], backend: str = "auto",
                        device: Optional[str] = None, precision: str = "fp32",
                        input_size: Optional[Sequence[int]] = None, pruned: bool = False,
                        cache_dir: Optional[Union[str, os.PathLike]] = None,
                        compile: bool = False,
                        device_processing: Optional[bool] = None) -> "Segmenter":
        """Loads ``weights`` (project or official format) into the backend ``backend``.

        ``backend``: ``auto`` (TensorRT -> torch on CUDA -> ONNX Runtime on CPU), ``torch``,
        ``onnxruntime`` or ``tensorrt``. ``device``: None (auto), ``cpu``, ``cuda[:N]``.
        ``precision``: ``fp32`` or ``fp16`` (GPU). ``pruned``: MFARANet-Pruned (branch 2).
        ``cache_dir``: where exported / compiled artifacts are kept (default: the user
        cache directory; an unwritable one gives a warning and in-memory artifacts).
        ``compile``: ``torch.compile`` for the torch backend.
        ``device_processing``: pre/post-processing as torch ops on the backend's device
        (default: on for the torch and tensorrt backends on CUDA; numpy/OpenCV otherwise).
        """
        size = _check_input_size(input_size)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if device is not None:
            resolve_device(device)  # a malformed or unavailable device fails before any loading
        source = ModelSource(weights, pruned=pruned)
        cache = resolve_cache_dir(cache_dir)
        be = create_backend(backend, source, device=device, precision=precision, cache=cache,
                            compile=compile)
        log.info("segmenter: %s, %s, network input %s", source.describe(), be.describe(),
                 "full resolution" if size is None else f"{size[0]}x{size[1]} (letterboxed)")
        return cls(be, source.metadata, size, device_processing=device_processing)

    # ------------------------------------------------------------------ properties

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def backend_name(self) -> str:
        return self._backend.name

    @property
    def device(self) -> str:
        return self._backend.device

    @property
    def device_processing(self) -> bool:
        """Whether pre/post-processing runs as torch ops on the backend's device."""
        return self._device_proc is not None

    @property
    def precision(self) -> str:
        return self._backend.precision

    def describe(self) -> str:
        return self._backend.describe()

    def network_shape(self, frame_shape: Tuple[int, int]) -> Tuple[int, int]:
        """The network input (H, W) a frame of ``frame_shape`` (h, w) runs at."""
        return self.input_size if self.input_size is not None else (int(frame_shape[0]), int(frame_shape[1]))

    # ------------------------------------------------------------------ running

    def warmup(self, frame_shape: Tuple[int, int] = (512, 1024), batch: int = 1,
               confidence: bool = False) -> float:
        """Builds or loads the backend's artifact for this frame size and runs it once.

        Returns the seconds spent (minutes for a first TensorRT build; ~0 on a cache hit).
        """
        t0 = time.perf_counter()
        h, w = (int(v) for v in frame_shape[:2])
        self._backend.prepare(batch, *self.network_shape((h, w)), confidence=confidence)
        frames = [np.zeros((h, w, 3), np.uint8)] * batch
        self.segment_batch(frames, color=True, overlay=True, confidence=confidence)
        return time.perf_counter() - t0

    def segment(self, frame: np.ndarray, *, color: bool = True, overlay: bool = True,
                confidence: bool = False, overlay_alpha: float = 0.5) -> SegmentationResult:
        """Segments one ``(H, W, 3)`` uint8 RGB frame."""
        result = self.segment_batch([frame], color=color, overlay=overlay, confidence=confidence,
                                    overlay_alpha=overlay_alpha)[0]
        result.timings.pop("batch_size", None)
        return result

    def segment_batch(self, frames: Sequence[np.ndarray], *, color: bool = True,
                      overlay: bool = True, confidence: bool = False,
                      overlay_alpha: float = 0.5) -> List[SegmentationResult]:
        """Segments several frames (e.g. one per camera) in as few backend calls as possible.

        With a fixed ``input_size`` all frames, whatever their sizes, run as one batch; at
        full resolution frames of the same size are batched together.
        """
        t0 = time.perf_counter()
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            raise ValueError("segment_batch expects a sequence of frames; use segment() for one frame")
        frames = [check_frame(f, i) for i, f in enumerate(frames)]
        if not frames:
            return []
        if overlay and not 0.0 <= overlay_alpha <= 1.0:
            raise ValueError(f"overlay_alpha must be in [0, 1], got {overlay_alpha}")
        if self._device_proc is not None:
            return self._segment_on_device(frames, color, overlay, confidence, overlay_alpha, t0)
        groups = self._prepare_groups(frames)
        t1 = time.perf_counter()
        outputs: List[Tuple[np.ndarray, Optional[np.ndarray]]] = [None] * len(frames)  # type: ignore
        for indices, pixels in groups:
            labels, conf = self._backend.run(pixels, confidence=confidence)
            for j, i in enumerate(indices):
                outputs[i] = (labels[j], None if conf is None else conf[j])
        t2 = time.perf_counter()
        results = []
        for frame, (labels, conf) in zip(frames, outputs):
            box = letterbox_geometry(frame.shape[:2], self.network_shape(frame.shape[:2]))
            results.append(self._finish(frame, box, labels, conf, color, overlay, overlay_alpha))
        t3 = time.perf_counter()
        return _with_timings(results, t0, t1, t2, t3)

    __call__ = segment

    # ------------------------------------------------------------------ internals

    @torch.inference_mode()
    def _segment_on_device(self, frames: List[np.ndarray], color: bool, overlay: bool,
                           confidence: bool, alpha: float, t0: float) -> List[SegmentationResult]:
        dp = self._device_proc
        uploaded = dp.upload(frames)
        boxes = [letterbox_geometry(f.shape[:2], self.network_shape(f.shape[:2])) for f in frames]
        if self.input_size is not None:
            groups = [(list(range(len(frames))), dp.letterbox(uploaded, boxes, self.input_size))]
        else:
            by_shape: Dict[Tuple[int, int], List[int]] = {}
            for i, f in enumerate(frames):
                by_shape.setdefault(f.shape[:2], []).append(i)
            groups = [(idx, torch.stack([uploaded[i] for i in idx])) for idx in by_shape.values()]
        dp.sync()
        t1 = time.perf_counter()
        outputs: List = [None] * len(frames)
        for indices, pixels in groups:
            labels, conf = self._backend.run_tensor(pixels, confidence=confidence)
            for j, i in enumerate(indices):
                outputs[i] = (labels[j], None if conf is None else conf[j])
        dp.sync()
        t2 = time.perf_counter()
        results = []
        for frame_t, box, (labels, conf) in zip(uploaded, boxes, outputs):
            labels = dp.restore_labels(labels, box)
            col = dp.colorize(labels) if (color or overlay) else None
            ov = dp.blend(frame_t, col, alpha) if overlay else None
            results.append(SegmentationResult(
                labels=dp.download(labels),
                color=dp.download(col) if color else None,
                overlay=dp.download(ov),
                confidence=None if conf is None else dp.download(dp.restore_confidence(conf, box)),
            ))
        t3 = time.perf_counter()
        return _with_timings(results, t0, t1, t2, t3)

    def _prepare_groups(self, frames: List[np.ndarray]) -> List[Tuple[List[int], np.ndarray]]:
        if self.input_size is None:
            by_shape: Dict[Tuple[int, int], List[int]] = {}
            for i, f in enumerate(frames):
                by_shape.setdefault(f.shape[:2], []).append(i)
            groups = []
            for indices in by_shape.values():
                if len(indices) == 1:
                    pixels = np.ascontiguousarray(frames[indices[0]])[None]
                else:
                    pixels = np.stack([frames[i] for i in indices])
                groups.append((indices, pixels))
            return groups
        h, w = self.input_size
        canvas = np.empty((len(frames), h, w, 3), np.uint8)
        for i, f in enumerate(frames):
            letterbox_into(f, canvas[i], letterbox_geometry(f.shape[:2], (h, w)), self._fill)
        return [(list(range(len(frames))), canvas)]

    def _finish(self, frame: np.ndarray, box: Letterbox, labels: np.ndarray,
                conf: Optional[np.ndarray], color: bool, overlay: bool,
                alpha: float) -> SegmentationResult:
        labels = restore_labels(labels, box)
        col = colorize(labels, self._lut) if (color or overlay) else None
        ov = blend(frame, col, alpha) if overlay else None
        return SegmentationResult(
            labels=labels,
            color=col if color else None,
            overlay=ov,
            confidence=None if conf is None else restore_confidence(conf, box),
        )
