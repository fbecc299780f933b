"""Frames for int8 calibration and for the accuracy check of a low-precision artifact.

Three sources, named the way ``mfaranet build-engine --calibration`` takes them:

- a **bag** (rosbag2 folder, ``.mcap``, ``.db3`` or ROS 1 ``.bag``) and its image topic;
- a **folder of images** (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``), in name order;
- ``synthetic``: generated street scenes (:mod:`mfaranet_ros.synthetic`).

Every frame is letterboxed into the network input exactly as the Segmenter does it, so
the activation ranges are those the deployed model sees. A source is split in two:
calibration frames and *held-out* frames that calibration never saw; an artifact's
accuracy (agreement with fp32, mIoU difference) is measured on the held-out ones.
Generated scenes come with ground truth; for a bag or a folder, whose frames have none,
the mIoU difference is measured on generated scenes instead.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .processing import letterbox_geometry, letterbox_into

__all__ = ["FrameSet", "CalibrationSpec", "SYNTHETIC", "load_calibration", "scenes",
           "CALIBRATION_SEED", "HELD_OUT_SEED"]

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"
#: Scene seeds of generated calibration frames and of generated held-out frames; both
#: ranges are apart from the training (0..) and demo (2000) seeds.
CALIBRATION_SEED = 70000
HELD_OUT_SEED = 90000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
BAG_SUFFIXES = (".mcap", ".db3", ".bag")


@dataclass(frozen=True)
class FrameSet:
    """Frames at the network input size.

    ``frames`` ``(N, H, W, 3)`` uint8 RGB; ``labels`` ``(N, H, W)`` uint8 trainIds
    (255 = ignore) or None when the source has no ground truth; ``source`` says where
    they came from.
    """

    frames: np.ndarray
    labels: Optional[np.ndarray]
    source: str

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def sha256(self) -> str:
        """Hash of the pixels and their shape: the calibration part of a cache key."""
        h = hashlib.sha256(repr(self.frames.shape).encode())
        h.update(np.ascontiguousarray(self.frames).tobytes())
        return h.hexdigest()


#: ``(bag path, image topic or None, count)`` -> the first ``count`` RGB frames and where
#: they came from: how a bag is read (this layer reads no bags itself)
BagImages = Callable[[Path, Optional[str], int], Tuple[List[np.ndarray], str]]
#: ``(predictions (N, H, W), truth (N, H, W), num_classes)`` -> mIoU 0..1: the metric
Miou = Callable[[np.ndarray, np.ndarray, int], float]


@dataclass(frozen=True)
class CalibrationSpec:
    """What ``--calibration`` names: ``source`` (``synthetic``, a bag or an image folder),
    the bag's ``image_topic`` (None: its only image topic), ``frames`` for calibration and
    ``held_out`` frames for the accuracy check.

    Given by the caller, from the layers above this one: ``read_bag`` reads a bag's frames
    (a bag source needs it), ``miou`` scores the held-out frames that have ground truth
    (without it the accuracy check reports the label agreement only).
    """

    source: str = SYNTHETIC
    image_topic: Optional[str] = None
    frames: int = 16
    held_out: int = 8
    read_bag: Optional[BagImages] = field(default=None, compare=False, repr=False)
    miou: Optional[Miou] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.frames < 1 or self.held_out < 1:
            raise ValueError(f"calibration needs at least 1 frame and 1 held-out frame, got "
                             f"{self.frames} and {self.held_out}")


def scenes(seed: int, count: int, size: Tuple[int, int]) -> FrameSet:
    """``count`` generated street scenes (with ground truth) rendered at ``size``."""
    from ..synthetic import generate_scene

    pairs = [generate_scene(seed + i, (int(size[0]), int(size[1]))) for i in range(count)]
    return FrameSet(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]),
                    f"generated street scenes, seeds {seed}..{seed + count - 1}")


def _letterboxed(images: Sequence[np.ndarray], size: Tuple[int, int],
                 fill: np.ndarray) -> np.ndarray:
    out = np.empty((len(images), size[0], size[1], 3), np.uint8)
    for i, img in enumerate(images):
        letterbox_into(img, out[i], letterbox_geometry(img.shape[:2], size), fill)
    return out


def _is_bag(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in BAG_SUFFIXES
    return (path / "metadata.yaml").is_file() or any(
        p.suffix.lower() in BAG_SUFFIXES for p in path.iterdir())


def _folder_images(path: Path, count: int) -> Tuple[List[np.ndarray], str]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images = []
    for p in files[:count]:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"calibration image {str(p)!r} cannot be read as an image")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return images, f"image folder {path.name}"


def _recorded(spec: CalibrationSpec, size: Tuple[int, int],
              fill: np.ndarray) -> Tuple[FrameSet, FrameSet]:
    """A bag's or folder's frames: even positions calibrate, odd ones are held out."""
    path = Path(spec.source).expanduser()
    if not path.exists():
        raise ValueError(f"calibration source {spec.source!r} does not exist; give a bag, a "
                         f"folder of images or {SYNTHETIC!r}")
    wanted = 2 * max(spec.frames, spec.held_out)
    if _is_bag(path):
        if spec.read_bag is None:
            raise ValueError(f"calibration source {spec.source!r} is a bag: this caller gave "
                             f"no bag reader (mfaranet build-engine reads bags)")
        images, where = spec.read_bag(path, spec.image_topic, wanted)
    else:
        images, where = _folder_images(path, wanted)
    if len(images) < 2:
        raise ValueError(f"calibration source {spec.source!r} ({where}) has {len(images)} "
                         f"image(s); it needs at least 2 (calibration and held-out)")
    boxed = _letterboxed(images, size, fill)
    calib, held = boxed[0::2][:spec.frames], boxed[1::2][:spec.held_out]
    return (FrameSet(calib, None, f"{where}: {len(calib)} frames (even positions)"),
            FrameSet(held, None, f"{where}: {len(held)} held-out frames (odd positions)"))


def load_calibration(spec: CalibrationSpec, size: Tuple[int, int],
                     fill: np.ndarray) -> Tuple[FrameSet, List[FrameSet]]:
    """Calibration frames and the held-out sets the accuracy check runs on.

    ``size``: the network input ``(H, W)``; ``fill``: the letterbox fill colour (the
    normalisation mean). The held-out sets are the source's own held-out frames and,
    where those have no ground truth, generated scenes that have it.
    """
    size = (int(size[0]), int(size[1]))
    if spec.source == SYNTHETIC:
        calib = scenes(CALIBRATION_SEED, spec.frames, size)
        calib = FrameSet(calib.frames, None, calib.source)
        return calib, [scenes(HELD_OUT_SEED, spec.held_out, size)]
    calib, held = _recorded(spec, size, fill)
    log.info("calibration: %s; held out: %s", calib.source, held.source)
    return calib, [held, scenes(HELD_OUT_SEED, spec.held_out, size)]
