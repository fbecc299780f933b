"""The Segmenter: uint8 RGB frames in, labels / colour / overlay / confidence out, any backend."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..model import ModelMetadata
from ..names import AUTO_PRECISION, CHECKPOINT_SIZE, InputSize, check_precision_request
from .backends import (
    ARRAY_TYPES,
    BACKENDS,
    Backend,
    ModelSource,
    create_backend,
    resolve_device,
)
from .cache import resolve_cache_dir
from .device_processing import DeviceProcessing
from .precision_rule import PrecisionChoice
from .processing import (
    Array,
    HostProcessing,
    Letterbox,
    Processing,
    check_frame,
    letterbox_fill,
    letterbox_geometry,
    palette_lut,
)

__all__ = ["Segmenter", "SegmentationResult", "CHECKPOINT_SIZE", "resolve_input_size"]

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


def _is_checkpoint_size(input_size: InputSize) -> bool:
    return isinstance(input_size, str) and input_size == CHECKPOINT_SIZE


def _check_input_size(input_size) -> Optional[Tuple[int, int]]:
    if input_size is None:
        return None
    if isinstance(input_size, str):
        raise ValueError(f"input_size must be {CHECKPOINT_SIZE!r}, None (full resolution) or "
                         f"(H, W), got {input_size!r}")
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be None or (H, W), got {input_size!r}") from None
    if h < 32 or w < 32:
        raise ValueError(f"input_size must be at least 32x32 (the encoder downsamples 32x), "
                         f"got {h}x{w}")
    return h, w


def resolve_input_size(input_size: InputSize,
                       metadata: ModelMetadata) -> Tuple[Optional[Tuple[int, int]], str]:
    """The network input ``(H, W)`` (None: each frame's full resolution) and why.

    ``input_size``: ``"checkpoint"`` (the size ``metadata`` records, else full
    resolution), None (full resolution) or ``(H, W)``. The reason is a short phrase for
    start-up logs, e.g. ``"256x512, recorded in the checkpoint"``.
    """
    if _is_checkpoint_size(input_size):
        if not metadata.input_size:
            return None, "full resolution: the checkpoint records no input size"
        try:
            size = _check_input_size(metadata.input_size)
        except ValueError as exc:
            raise ValueError(f"the checkpoint's recorded input size cannot be used ({exc}); "
                             f"pass input_size=(H, W) or None") from None
        return size, f"{size[0]}x{size[1]}, recorded in the checkpoint"
    size = _check_input_size(input_size)
    if size is None:
        return None, "full resolution, requested"
    return size, f"{size[0]}x{size[1]}, requested"


#: ``into(index, name, shape)``: where a frame's output goes (:meth:`Segmenter.segment_batch`)
Destination = Callable[[int, str, Tuple[int, ...]], Optional[np.ndarray]]


def _destinations(into: Optional[Destination],
                  index: int) -> Callable[[str, Tuple[int, ...]], Optional[np.ndarray]]:
    """Frame ``index``'s ``into``, checked: an array of the wrong shape or type is a bug of
    the caller's, refused here rather than written past."""
    def destination(name: str, shape: Tuple[int, ...]) -> Optional[np.ndarray]:
        out = None if into is None else into(index, name, shape)
        if out is not None and (out.shape != shape or out.dtype != np.uint8
                                or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"into: {name} needs a writable contiguous uint8 array of shape "
                             f"{shape}, got {out.dtype} {out.shape}")
        return out
    return destination


def _with_timings(results: List[SegmentationResult], t0: float, t1: float, t2: float,
                  t3: float) -> List[SegmentationResult]:
    """Gives each result of one batch the batch's stage times (ms) and size."""
    timings = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
               "postprocess": (t3 - t2) * 1e3, "batch_size": len(results)}
    for r in results:
        r.timings = dict(timings)
    return results


def choose_processing(backend: Backend, lut: np.ndarray, fill: np.ndarray,
                      on_device: Optional[bool] = None) -> Processing:
    """The processing implementation for ``backend``.

    ``on_device`` None: torch ops on the device for a backend that takes tensors on a
    GPU; numpy / OpenCV on the host otherwise (on the CPU the host is >= 10x cheaper).
    True asks for the torch ops wherever the backend takes tensors (on the CPU: tests).
    """
    if backend.array_type not in ARRAY_TYPES:
        raise ValueError(f"backend {backend.name}: array_type must be one of {ARRAY_TYPES}, "
                         f"got {backend.array_type!r}")
    takes_tensors = backend.array_type == "torch"
    if on_device is None:
        on_device = takes_tensors and str(backend.device).startswith("cuda")
    if on_device and not takes_tensors:
        raise ValueError(f"backend {backend.name} has no device-side processing path "
                         f"(its run takes numpy arrays)")
    if on_device:
        return DeviceProcessing(backend.device, lut, fill)
    return HostProcessing(lut, fill, tensor_device=backend.device if takes_tensors else None)


class Segmenter:
    """Runs MFARANet on frames through one backend.

    Build it with :meth:`from_checkpoint`. ``input_size="checkpoint"`` (the default)
    runs at the size the checkpoint records, or at full resolution if it records
    none; ``input_size=None`` runs every frame at its full resolution (one compiled
    artifact per frame size for the ONNX / TensorRT backends); ``input_size=(H, W)``
    letterboxes every frame into that network input, keeping its aspect ratio (see
    :mod:`mfaranet_ros.inference.processing`), and maps the labels back to the frame's
    own size. :attr:`input_size_reason` says which size and why, for start-up logs.

    Every frame takes the same steps (:class:`~.processing.Processing`): on the host
    with numpy / OpenCV, or as torch ops on the backend's GPU (``device_processing``).
    """

    def __init__(self, backend: Backend, metadata: ModelMetadata,
                 input_size: InputSize = CHECKPOINT_SIZE,
                 device_processing: Optional[bool] = None) -> None:
        self._backend = backend
        self.metadata = metadata
        self.input_size, self.input_size_reason = resolve_input_size(input_size, metadata)
        lut = palette_lut(metadata.palette)
        # Letterbox padding = the normalisation mean, which the graph maps to ~0.
        fill = letterbox_fill(metadata.mean)
        self._processing = choose_processing(backend, lut, fill, device_processing)
        #: what ``precision: auto`` chose and why (None: a precision was named)
        self.precision_choice: Optional[PrecisionChoice] = None

    @classmethod
    def from_checkpoint(cls, weights: Union[str, os.PathLike], backend: str = "auto",
                        device: Optional[str] = None, precision: str = "fp32",
                        input_size: InputSize = CHECKPOINT_SIZE, pruned: bool = False,
                        cache_dir: Optional[Union[str, os.PathLike]] = None,
                        compile: bool = False,
                        device_processing: Optional[bool] = None) -> Segmenter:
        """Loads ``weights`` (project or official format) into the backend ``backend``.

        ``backend``: ``auto`` (TensorRT -> torch on CUDA -> ONNX Runtime on CPU), ``torch``,
        ``onnxruntime`` or ``tensorrt``. ``device``: None (auto), ``cpu``, ``cuda[:N]``.
        ``precision``: ``fp32``, ``fp16`` (GPU), ``bf16`` (OpenVINO, CPUs with bf16
        units), ``int8`` (a calibrated artifact) or ``auto``: the fastest of those this
        machine runs whose labels agree with fp32's on >= 99.5 % of the pixels of probe
        frames, measured now (:mod:`.auto_precision`; :attr:`precision_choice` says what
        was tried and measured). ``input_size``: ``"checkpoint"`` (the
        size the checkpoint records; full resolution if none), None (full resolution)
        or ``(H, W)``. ``pruned``: MFARANet-Pruned (branch 2).
        ``cache_dir``: where exported / compiled artifacts are kept (default: the user
        cache directory; an unwritable one gives a warning and in-memory artifacts).
        ``compile``: ``torch.compile`` for the torch backend.
        ``device_processing``: pre/post-processing as torch ops on the backend's device
        (default: on for the torch and tensorrt backends on CUDA; numpy/OpenCV otherwise).
        """
        if not _is_checkpoint_size(input_size):
            _check_input_size(input_size)  # a bad size fails before the checkpoint is read
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        check_precision_request(precision)
        if device is not None:
            resolve_device(device)  # a malformed or unavailable device fails before any loading
        source = ModelSource(weights, pruned=pruned)
        size, reason = resolve_input_size(input_size, source.metadata)  # before the backend
        cache = resolve_cache_dir(cache_dir)
        choice = None
        if precision == AUTO_PRECISION:
            from .auto_precision import select_precision

            be, choice = select_precision(backend, source, device=device, cache=cache,
                                          network_size=size, compile=compile)
        else:
            be = create_backend(backend, source, device=device, precision=precision,
                                cache=cache, compile=compile)
        log.info("segmenter: %s, %s, network input %s", source.describe(), be.describe(), reason)
        seg = cls(be, source.metadata, input_size, device_processing=device_processing)
        seg.precision_choice = choice
        return seg

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
    def processing(self) -> Processing:
        """The implementation of the steps around the backend (host or device)."""
        return self._processing

    @property
    def device_processing(self) -> bool:
        """Whether pre/post-processing runs as torch ops on the backend's device."""
        return isinstance(self._processing, DeviceProcessing)

    @property
    def precision(self) -> str:
        return self._backend.precision

    def describe(self) -> str:
        return self._backend.describe()

    def network_shape(self, frame_shape: Tuple[int, int]) -> Tuple[int, int]:
        """The network input (H, W) a frame of ``frame_shape`` (h, w) runs at."""
        if self.input_size is not None:
            return self.input_size
        return int(frame_shape[0]), int(frame_shape[1])

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

    def set_palette(self, palette: Sequence[Sequence[int]]) -> None:
        """The colours of the colour mask and the overlay, by label id (the checkpoint's
        palette until set): e.g. each model class in the colour of the class a label map
        sends it to."""
        self._processing.set_lut(palette_lut(palette))

    def segment(self, frame: np.ndarray, *, color: bool = True, overlay: bool = True,
                confidence: bool = False, overlay_alpha: float = 0.5,
                network_resolution: bool = False,
                into: Optional[Destination] = None) -> SegmentationResult:
        """Segments one ``(H, W, 3)`` uint8 RGB frame (see :meth:`segment_batch`)."""
        result = self.segment_batch([frame], color=color, overlay=overlay, confidence=confidence,
                                    overlay_alpha=overlay_alpha,
                                    network_resolution=network_resolution, into=into)[0]
        result.timings.pop("batch_size", None)
        return result

    def segment_batch(self, frames: Sequence[np.ndarray], *, color: bool = True,
                      overlay: bool = True, confidence: bool = False,
                      overlay_alpha: float = 0.5, network_resolution: bool = False,
                      into: Optional[Destination] = None) -> List[SegmentationResult]:
        """Segments several frames (e.g. one per camera) in as few backend calls as possible.

        The results are at each frame's own size; ``network_resolution``: at the network's
        scale instead, nothing upscaled: the frame's region of the network input (the
        letterbox padding cut off), ``(round(h * s), round(w * s))`` for the letterbox
        scale ``s``; the overlay is drawn on the frame shrunk the same way.

        With a fixed ``input_size`` all frames, whatever their sizes, run as one batch; at
        full resolution frames of the same size are batched together.

        ``into(index, name, shape)``: where frame ``index``'s ``labels``, ``color`` or
        ``overlay`` of ``shape`` is to be written, a uint8 host array of that shape (e.g. a
        view of a message's buffer), or None: anywhere. The result's array is then that
        array, written once (on a GPU: downloaded straight into it).
        """
        t0 = time.perf_counter()
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            raise ValueError("segment_batch expects a sequence of frames; "
                             "use segment() for one frame")
        frames = [check_frame(f, i) for i, f in enumerate(frames)]
        if not frames:
            return []
        if overlay and not 0.0 <= overlay_alpha <= 1.0:
            raise ValueError(f"overlay_alpha must be in [0, 1], got {overlay_alpha}")
        proc = self._processing
        with torch.inference_mode():
            images = proc.upload(frames)
            boxes = [letterbox_geometry(f.shape[:2], self.network_shape(f.shape[:2]))
                     for f in frames]
            batches = self._batches(images, boxes)
            proc.sync()
            t1 = time.perf_counter()
            outputs = self._infer(batches, len(frames), confidence)
            proc.sync()
            t2 = time.perf_counter()
            results = [self._finish(image, box, labels, conf, color, overlay, overlay_alpha,
                                    network_resolution, _destinations(into, i))
                       for i, (image, box, (labels, conf)) in enumerate(zip(images, boxes,
                                                                            outputs))]
        t3 = time.perf_counter()
        return _with_timings(results, t0, t1, t2, t3)

    __call__ = segment

    def run_network(self, pixels: np.ndarray,
                    confidence: bool = False) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The backend alone on a batch already at network size, with the copies to and
        from its device: ``(B, H, W, 3)`` uint8 -> labels ``(B, H, W)`` uint8 and
        confidence ``(B, H, W)`` float32 or None (no letterbox, no colour)."""
        proc = self._processing
        with torch.inference_mode():
            (batch,) = proc.upload([pixels])
            labels, conf = proc.from_backend(*self._backend.run(proc.to_backend(batch),
                                                                confidence=confidence))
            return proc.download(labels), proc.download(conf)

    # ------------------------------------------------------------------ internals

    def _batches(self, images: List[Array],
                 boxes: List[Letterbox]) -> List[Tuple[List[int], Array]]:
        """``(frame indices, (B, H, W, 3) batch)`` for each backend call."""
        proc = self._processing
        if self.input_size is not None:
            return [(list(range(len(images))), proc.letterbox(images, boxes, self.input_size))]
        by_shape: Dict[Tuple[int, int], List[int]] = {}
        for i, box in enumerate(boxes):
            by_shape.setdefault(box.source, []).append(i)
        return [(idx, proc.stack([images[i] for i in idx])) for idx in by_shape.values()]

    def _infer(self, batches: List[Tuple[List[int], Array]], count: int,
               confidence: bool) -> List[Tuple[Array, Optional[Array]]]:
        """Runs each batch; per frame (in input order): network-size labels, confidence."""
        proc = self._processing
        outputs: List[Tuple[Array, Optional[Array]]] = [None] * count  # type: ignore[list-item]
        for indices, pixels in batches:
            labels, conf = proc.from_backend(*self._backend.run(proc.to_backend(pixels),
                                                                confidence=confidence))
            for j, i in enumerate(indices):
                outputs[i] = (labels[j], None if conf is None else conf[j])
        return outputs

    def _finish(self, image: Array, box: Letterbox, labels: Array, conf: Optional[Array],
                color: bool, overlay: bool, alpha: float, network_resolution: bool,
                into: Callable[[str, Tuple[int, ...]], Optional[np.ndarray]]
                ) -> SegmentationResult:
        """One frame's network outputs -> its result at the source size (or the network's
        scale), in host memory (in ``into``'s arrays where it gives them)."""
        proc = self._processing
        size = box.valid if network_resolution else box.source
        out_labels = into("labels", tuple(size))
        out_color = into("color", (*size, 3)) if color else None
        out_overlay = into("overlay", (*size, 3)) if overlay else None
        col = None
        if network_resolution:
            labels = proc.valid_labels(labels, box, out_labels)
            conf = None if conf is None else proc.valid_confidence(conf, box)
            image = proc.shrink(image, box) if overlay else image
            if color or overlay:
                col = proc.colorize(labels, out_color)
        else:
            net_labels, labels = labels, proc.restore_labels(labels, box, out_labels)
            conf = None if conf is None else proc.restore_confidence(conf, box)
            if color or overlay:
                col = proc.restore_colors(net_labels, labels, box, out_color)
        ov = proc.blend(image, col, alpha, out_overlay) if overlay else None
        return SegmentationResult(
            labels=proc.download(labels, out_labels),
            color=proc.download(col, out_color) if color else None,
            overlay=proc.download(ov, out_overlay),
            confidence=proc.download(conf),
        )
