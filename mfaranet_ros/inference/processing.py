"""Pre- and post-processing: one interface, and its host implementation (numpy + OpenCV).

The Segmenter runs every frame through the same steps: upload, letterbox (or stack) into
a batch at the network size, hand the batch to the backend, restore labels and
confidence to the frame's size, colourise, blend, download. :class:`Processing` names
those steps; :class:`HostProcessing` does them on numpy arrays in host memory, and
:class:`~.device_processing.DeviceProcessing` as torch ops on the backend's device.

Only uint8 pixels and uint8 labels cross these steps: the normalisation to float and the
argmax live inside each backend's graph (:mod:`.graph`).

Network input size and aspect ratio
-----------------------------------
With a fixed network input ``(H, W)`` a frame of size ``(h, w)`` is *letterboxed*:
scaled by ``s = min(H / h, W / w)`` (aspect ratio kept) to ``(round(h s), round(w s))``,
placed at the top-left corner of an ``(H, W)`` canvas filled with the normalisation
mean (which the graph maps to 0), and the labels of that valid region are resized
back to ``(h, w)`` with nearest-neighbour interpolation. A frame with the network's
aspect ratio (1024x2048 into 512x1024) is simply resized, without padding.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

__all__ = [
    "Array",
    "Letterbox",
    "Processing",
    "HostProcessing",
    "check_frame",
    "letterbox_fill",
    "letterbox_geometry",
    "letterbox_into",
    "palette_lut",
    "colorize",
    "blend",
    "restore_labels",
    "restore_confidence",
]

#: What a processing implementation works on: numpy in host memory, or torch tensors.
Array = Union[np.ndarray, torch.Tensor]
#: Where a step's result is wanted (see :class:`Processing`), or None: anywhere.
OutArray = Optional[np.ndarray]


def check_frame(frame: object, index: Optional[int] = None) -> np.ndarray:
    """Returns ``frame`` if it is a non-empty ``(H, W, 3)`` uint8 array, else raises ValueError."""
    where = "frame" if index is None else f"frame {index}"
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"{where}: expected a numpy array (H, W, 3) uint8 RGB, "
                         f"got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"{where}: expected dtype uint8 (RGB 0..255), got {frame.dtype}")
    if frame.ndim != 3:
        raise ValueError(f"{where}: expected rank 3 (H, W, 3), got rank {frame.ndim} "
                         f"with shape {frame.shape}")
    if frame.shape[2] != 3:
        raise ValueError(f"{where}: expected 3 channels (RGB), got {frame.shape[2]} "
                         f"with shape {frame.shape}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"{where}: empty image, shape {frame.shape}")
    # Views such as bgr[..., ::-1] or crops: OpenCV needs contiguous rows (no copy otherwise).
    return np.ascontiguousarray(frame)


@dataclass(frozen=True)
class Letterbox:
    """Where a source frame lies in the network input: ``(h, w)`` -> ``(valid_h, valid_w)``."""

    source: Tuple[int, int]
    valid: Tuple[int, int]
    canvas: Tuple[int, int]

    @property
    def is_identity(self) -> bool:
        return self.source == self.valid == self.canvas


def letterbox_geometry(source: Tuple[int, int], canvas: Tuple[int, int]) -> Letterbox:
    h, w = source
    ch, cw = canvas
    scale = min(ch / h, cw / w)
    vh = min(ch, max(1, int(round(h * scale))))
    vw = min(cw, max(1, int(round(w * scale))))
    return Letterbox((h, w), (vh, vw), (ch, cw))


class Processing(abc.ABC):
    """The Segmenter's steps around the backend, on one kind of array.

    Images are ``(H, W, 3)`` uint8 RGB, batches ``(B, H, W, 3)`` uint8, labels
    ``(H, W)`` uint8 trainIds, confidence ``(H, W)`` float32, all in this
    implementation's array type. ``lut`` is the ``(256, 3)`` uint8 palette table
    (:func:`palette_lut`), ``fill`` the ``(3,)`` uint8 letterbox padding.

    ``out``: where a result is wanted in the end, a host numpy array of its shape (e.g. a
    view of a message's buffer). The host implementation writes the result there at once;
    one whose arrays live on a device ignores it until :meth:`download`, which copies into
    ``out`` straight from the device. Either way ``download(x, out)`` returns ``out``
    holding the result, with no copy in between.
    """

    def sync(self) -> None:
        """Waits for queued asynchronous work, so that stage timings mean something."""
        return None  # host work is synchronous: nothing to wait for

    def set_lut(self, lut: np.ndarray) -> None:
        """A new ``(256, 3)`` uint8 palette table for :meth:`colorize`."""
        self.lut = np.ascontiguousarray(lut, dtype=np.uint8)

    @abc.abstractmethod
    def upload(self, frames: Sequence[np.ndarray]) -> List[Array]:
        """Host numpy arrays (any shape) -> this implementation's arrays, one per frame."""

    @abc.abstractmethod
    def letterbox(self, images: Sequence[Array], boxes: Sequence[Letterbox],
                  canvas_hw: Tuple[int, int]) -> Array:
        """Images of any sizes -> one ``(B, H, W, 3)`` batch at ``canvas_hw``."""

    @abc.abstractmethod
    def stack(self, images: Sequence[Array]) -> Array:
        """Images of one size -> one ``(B, H, W, 3)`` batch (no copy for a single image)."""

    def to_backend(self, pixels: Array) -> Array:
        """A batch -> what the backend's ``run`` takes (the same array here)."""
        return pixels

    def from_backend(self, labels: Array, conf: Optional[Array]) -> Tuple[Array, Optional[Array]]:
        """The backend's outputs -> this implementation's arrays (the same here)."""
        return labels, conf

    @abc.abstractmethod
    def restore_labels(self, labels: Array, box: Letterbox, out: OutArray = None) -> Array:
        """Network-size labels ``(H, W)`` -> source-size labels ``(h, w)`` (nearest)."""

    @abc.abstractmethod
    def restore_confidence(self, conf: Array, box: Letterbox) -> Array:
        """Network-size confidence ``(H, W)`` -> source size ``(h, w)`` float32 (bilinear)."""

    def valid_labels(self, labels: Array, box: Letterbox, out: OutArray = None) -> Array:
        """Network-size labels -> the frame's region of them, at network scale
        ``(valid_h, valid_w)``: the letterbox padding cut off, nothing resized."""
        vh, vw = box.valid
        return labels[:vh, :vw]

    def valid_confidence(self, conf: Array, box: Letterbox) -> Array:
        """As :meth:`valid_labels`, for the confidence (float32)."""
        vh, vw = box.valid
        return conf[:vh, :vw].astype(np.float32) if isinstance(conf, np.ndarray) \
            else conf[:vh, :vw].float()

    @abc.abstractmethod
    def shrink(self, image: Array, box: Letterbox) -> Array:
        """The source image at network scale ``(valid_h, valid_w, 3)``, resized as the
        letterbox resizes it (for an overlay at network resolution)."""

    @abc.abstractmethod
    def colorize(self, labels: Array, out: OutArray = None) -> Array:
        """``(H, W)`` uint8 labels -> ``(H, W, 3)`` uint8 RGB through the palette."""

    def restore_colors(self, labels: Array, restored: Array, box: Letterbox,
                       out: OutArray = None) -> Array:
        """The colour mask at the source size: the colours of ``restored``, which is
        :meth:`restore_labels` of the network-size ``labels`` (an implementation may
        colour the fewer network pixels instead)."""
        return self.colorize(restored, out)

    @abc.abstractmethod
    def blend(self, image: Array, color: Array, alpha: float, out: OutArray = None) -> Array:
        """``(1 - alpha) * image + alpha * color``, rounded, uint8."""

    @abc.abstractmethod
    def download(self, array: Optional[Array], out: OutArray = None) -> Optional[np.ndarray]:
        """This implementation's array -> a host numpy array (None stays None); ``out``
        given: that array, holding it."""


def letterbox_fill(mean: Sequence[float]) -> np.ndarray:
    """The letterbox padding: the normalisation mean as ``(3,)`` uint8 (the graph maps it
    to about 0, so the padding looks like "nothing" to the network)."""
    return np.clip(np.round(np.asarray(mean, np.float64)), 0, 255).astype(np.uint8)


def letterbox_into(frame: np.ndarray, out: np.ndarray, box: Letterbox, fill: np.ndarray) -> None:
    """Writes ``frame`` letterboxed into ``out`` (a ``(H, W, 3)`` uint8 view), filling the rest."""
    vh, vw = box.valid
    if (vh, vw) == box.source:
        out[:vh, :vw] = frame
    else:
        shrinking = vh < box.source[0]
        # INTER_AREA avoids aliasing when shrinking; bilinear when enlarging.
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        cv2.resize(frame, (vw, vh), dst=out[:vh, :vw], interpolation=interp)
    if vh < out.shape[0]:
        out[vh:] = fill
    if vw < out.shape[1]:
        out[:vh, vw:] = fill


def restore_labels(labels: np.ndarray, box: Letterbox, out: OutArray = None) -> np.ndarray:
    """Network-size labels ``(H, W)`` -> source-size labels ``(h, w)`` (nearest neighbour);
    also for ``(H, W, 3)`` colours of labels. ``out``: written there."""
    vh, vw = box.valid
    valid = labels[:vh, :vw]
    if (vh, vw) == box.source:
        return _into(valid, out)
    h, w = box.source
    return _into(cv2.resize(valid, (w, h), dst=out, interpolation=cv2.INTER_NEAREST), out)


def _into(result: np.ndarray, out: OutArray) -> np.ndarray:
    """``result`` in ``out`` (copied unless a step already wrote it there), or contiguous."""
    if out is None:
        return np.ascontiguousarray(result)
    if result is not out:
        np.copyto(out, result)
    return out


def restore_confidence(conf: np.ndarray, box: Letterbox) -> np.ndarray:
    """Network-size confidence ``(H, W)`` -> source-size ``(h, w)`` float32 (bilinear)."""
    vh, vw = box.valid
    valid = conf[:vh, :vw]
    if (vh, vw) == box.source:
        return np.ascontiguousarray(valid, dtype=np.float32)
    h, w = box.source
    return cv2.resize(valid.astype(np.float32, copy=False), (w, h),
                      interpolation=cv2.INTER_LINEAR)


def palette_lut(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """A ``(256, 3)`` uint8 lookup table; ids without a colour (e.g. ignore=255) are black."""
    lut = np.zeros((256, 3), np.uint8)
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)
    if len(colours) > 256:
        raise ValueError(f"palette has {len(colours)} colours; labels are uint8 (at most 256)")
    lut[: len(colours)] = colours
    return lut


def colorize(labels: np.ndarray, lut: np.ndarray, out: OutArray = None) -> np.ndarray:
    """``(H, W)`` uint8 labels -> ``(H, W, 3)`` uint8 RGB through a ``(256, 3)`` table."""
    return np.take(lut, labels, axis=0, out=out)


def blend(frame: np.ndarray, color: np.ndarray, alpha: float,
          out: OutArray = None) -> np.ndarray:
    """``(1 - alpha) * frame + alpha * color``, rounded, uint8."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay_alpha must be in [0, 1], got {alpha}")
    return _into(cv2.addWeighted(frame, 1.0 - alpha, color, alpha, 0.0, dst=out), out)


class HostProcessing(Processing):
    """The steps on numpy arrays in host memory, with OpenCV for resizing and blending.

    ``tensor_device``: set when the backend's ``run`` takes torch tensors (the torch
    backend on the CPU): batches are then handed over as tensors on that device (on
    the CPU sharing the numpy memory, no copy) and its outputs come back as numpy.
    """

    def __init__(self, lut: np.ndarray, fill: np.ndarray,
                 tensor_device: Optional[str] = None) -> None:
        self.lut = lut
        self.fill = fill
        self.tensor_device = None if tensor_device is None else torch.device(tensor_device)

    def upload(self, frames: Sequence[np.ndarray]) -> List[np.ndarray]:
        return [np.ascontiguousarray(f) for f in frames]

    def letterbox(self, images: Sequence[np.ndarray], boxes: Sequence[Letterbox],
                  canvas_hw: Tuple[int, int]) -> np.ndarray:
        h, w = canvas_hw
        canvas = np.empty((len(images), h, w, 3), np.uint8)
        for i, (image, box) in enumerate(zip(images, boxes)):
            letterbox_into(image, canvas[i], box, self.fill)
        return canvas

    def stack(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return images[0][None] if len(images) == 1 else np.stack(images)

    def to_backend(self, pixels: np.ndarray) -> Array:
        if self.tensor_device is None:
            return pixels
        return torch.from_numpy(pixels).to(self.tensor_device)

    def from_backend(self, labels: Array,
                     conf: Optional[Array]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        if self.tensor_device is None:
            return labels, conf
        return labels.cpu().numpy(), None if conf is None else conf.float().cpu().numpy()

    def restore_labels(self, labels: np.ndarray, box: Letterbox,
                       out: OutArray = None) -> np.ndarray:
        return restore_labels(labels, box, out)

    def restore_confidence(self, conf: np.ndarray, box: Letterbox) -> np.ndarray:
        return restore_confidence(conf, box)

    def valid_labels(self, labels: np.ndarray, box: Letterbox,
                     out: OutArray = None) -> np.ndarray:
        return _into(super().valid_labels(labels, box), out)

    def shrink(self, image: np.ndarray, box: Letterbox) -> np.ndarray:
        if box.valid == box.source:
            return image
        out = np.empty((*box.valid, 3), np.uint8)
        letterbox_into(image, out, box, self.fill)   # the valid region is all of ``out``
        return out

    def colorize(self, labels: np.ndarray, out: OutArray = None) -> np.ndarray:
        return colorize(labels, self.lut, out)

    def restore_colors(self, labels: np.ndarray, restored: np.ndarray, box: Letterbox,
                       out: OutArray = None) -> np.ndarray:
        """Colours the network-size labels, then enlarges the colours as the labels were
        enlarged (nearest neighbour picks the same pixels, so the result is the same): a
        palette lookup over the network's pixels instead of the camera's."""
        if box.valid == box.source:
            return self.colorize(restored, out)
        vh, vw = box.valid
        return restore_labels(self.colorize(labels[:vh, :vw]), Letterbox(
            box.source, box.valid, box.valid), out)

    def blend(self, image: np.ndarray, color: np.ndarray, alpha: float,
              out: OutArray = None) -> np.ndarray:
        return blend(image, color, alpha, out)

    def download(self, array: Optional[np.ndarray],
                 out: OutArray = None) -> Optional[np.ndarray]:
        if array is None or out is None:
            return array
        return _into(array, out)
