"""Host-side pre- and post-processing: frame checks, letterbox, label resize, palette, overlay.

Everything here is numpy + OpenCV on uint8 data: the normalisation to float and the
argmax live inside each backend's graph (:mod:`.graph`), so the host only ever handles
uint8 pixels and uint8 labels.

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

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    "Letterbox",
    "check_frame",
    "letterbox_geometry",
    "letterbox_into",
    "palette_lut",
    "colorize",
    "blend",
    "restore_labels",
    "restore_confidence",
]


def check_frame(frame: object, index: Optional[int] = None) -> np.ndarray:
    """Returns ``frame`` if it is a non-empty ``(H, W, 3)`` uint8 array, else raises ValueError."""
    where = "frame" if index is None else f"frame {index}"
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"{where}: expected a numpy array (H, W, 3) uint8 RGB, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"{where}: expected dtype uint8 (RGB 0..255), got {frame.dtype}")
    if frame.ndim != 3:
        raise ValueError(f"{where}: expected rank 3 (H, W, 3), got rank {frame.ndim} with shape {frame.shape}")
    if frame.shape[2] != 3:
        raise ValueError(f"{where}: expected 3 channels (RGB), got {frame.shape[2]} with shape {frame.shape}")
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


def restore_labels(labels: np.ndarray, box: Letterbox) -> np.ndarray:
    """Network-size labels ``(H, W)`` -> source-size labels ``(h, w)`` (nearest neighbour)."""
    vh, vw = box.valid
    valid = labels[:vh, :vw]
    if (vh, vw) == box.source:
        return np.ascontiguousarray(valid)
    h, w = box.source
    return cv2.resize(valid, (w, h), interpolation=cv2.INTER_NEAREST)


def restore_confidence(conf: np.ndarray, box: Letterbox) -> np.ndarray:
    vh, vw = box.valid
    valid = conf[:vh, :vw]
    if (vh, vw) == box.source:
        return np.ascontiguousarray(valid, dtype=np.float32)
    h, w = box.source
    return cv2.resize(valid.astype(np.float32, copy=False), (w, h), interpolation=cv2.INTER_LINEAR)


def palette_lut(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """A ``(256, 3)`` uint8 lookup table; ids without a colour (e.g. ignore=255) are black."""
    lut = np.zeros((256, 3), np.uint8)
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)
    if len(colours) > 256:
        raise ValueError(f"palette has {len(colours)} colours; labels are uint8 (at most 256)")
    lut[: len(colours)] = colours
    return lut


def colorize(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 labels -> ``(H, W, 3)`` uint8 RGB through a ``(256, 3)`` table."""
    return np.take(lut, labels, axis=0)


def blend(frame: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * frame + alpha * color``, rounded, uint8."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay_alpha must be in [0, 1], got {alpha}")
    return cv2.addWeighted(frame, 1.0 - alpha, color, alpha, 0.0)
