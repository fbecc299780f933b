"""Training and evaluation transforms (docs/model.md), numpy/OpenCV in, tensors out.

Randomness comes from a ``numpy.random.Generator`` the caller passes per sample, so
an augmented batch depends only on (seed, epoch, position): worker count and resume
do not change it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ..model.metadata import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["TrainTransform", "boundary_target", "normalize", "resize_pair"]

IGNORE = 255


def boundary_target(label: np.ndarray) -> np.ndarray:
    """Binary boundary map of a label map: a normalised 5x5 box filter differs from the label.

    The label is filtered as float *including* its 255 (ignore/padding) values, with
    OpenCV's default reflect-101 border, and pixels where ``|filtered - label| > 0.005``
    are boundary. This marks a band about 2 px wide on each side of every label change,
    edges against ignore regions included.

    Args:
        label: ``(H, W)`` integer label map.
    Returns:
        ``(H, W)`` float32 array of 0/1.
    """
    lab = label.astype(np.float32)
    smooth = cv2.filter2D(lab, -1, np.full((5, 5), 1.0 / 25.0, np.float32))
    return (np.abs(smooth - lab) > 0.005).astype(np.float32)


def normalize(rgb: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``(3, H, W)`` float32: ``(x - mean) / std``, 0..255 scale."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def resize_pair(rgb: np.ndarray, label: Optional[np.ndarray], size: Tuple[int, int]):
    """Resizes an image (area/bilinear) and its label (nearest) to ``size = (H, W)``."""
    h, w = int(size[0]), int(size[1])
    shrink = h < rgb.shape[0] and w < rgb.shape[1]
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if label is not None:
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    return rgb, label


@dataclass
class TrainTransform:
    """The official augmentation, in its order.

    (1) optional resize to ``base_size`` (``None``: keep the image as it is);
    (2) random isotropic scale in ``scale_range`` (bilinear image, nearest label);
    (3) with probability ``rotate_p`` a rotation in ``±rotate_deg`` (image border = the
    mean colour, label border = 255); (4) horizontal flip p = 0.5; (5) random crop of
    ``crop_size``, padding with the mean / 255 where the image is smaller; (6)
    normalisation; then the boundary target of the final crop.

    ``class_uniform_p`` > 0 adds class-uniform crop placement (as in the class-uniform
    sampling of Zhu et al., CVPR 2019): with that probability the crop is placed so that
    it holds a random pixel of a class drawn uniformly from those in the frame, instead
    of anywhere. Small, thin classes (poles, lights, signs) are then seen as often as
    road and sky; the rest of the recipe is unchanged. 0 (the default) is the official
    uniform crop.
    """

    crop_size: Tuple[int, int]
    scale_range: Tuple[float, float] = (0.5, 2.0)
    rotate_deg: float = 10.0
    rotate_p: float = 0.5
    flip_p: float = 0.5
    base_size: Optional[Tuple[int, int]] = None
    class_uniform_p: float = 0.0
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.class_uniform_p) <= 1.0:
            raise ValueError(f"augment.class_uniform_p must be a probability in [0, 1], "
                             f"got {self.class_uniform_p!r}")

    def __call__(self, rgb: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        """Returns ``image (3, h, w)`` float, ``label (h, w)`` int64 and
        ``boundary (1, h, w)`` float."""
        if rgb.shape[:2] != label.shape[:2]:
            raise ValueError(f"image {rgb.shape[:2]} and label {label.shape[:2]} sizes differ")
        fill = tuple(float(v) for v in self.mean)
        if self.base_size is not None:
            rgb, label = resize_pair(rgb, label, self.base_size)
        s = rng.uniform(*self.scale_range)
        h, w = label.shape
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
        if rng.random() < self.rotate_p:
            angle = rng.uniform(-self.rotate_deg, self.rotate_deg)
            m = cv2.getRotationMatrix2D((nw / 2.0, nh / 2.0), angle, 1.0)
            rgb = cv2.warpAffine(rgb, m, (nw, nh), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
            label = cv2.warpAffine(label, m, (nw, nh), flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE)
        if rng.random() < self.flip_p:
            rgb, label = rgb[:, ::-1], label[:, ::-1]
        ch, cw = self.crop_size
        ph, pw = max(ch - nh, 0), max(cw - nw, 0)
        if ph or pw:
            rgb = cv2.copyMakeBorder(np.ascontiguousarray(rgb), ph // 2, ph - ph // 2, pw // 2,
                                     pw - pw // 2, cv2.BORDER_CONSTANT, value=fill)
            label = cv2.copyMakeBorder(np.ascontiguousarray(label), ph // 2, ph - ph // 2, pw // 2,
                                       pw - pw // 2, cv2.BORDER_CONSTANT, value=IGNORE)
        y0, x0 = self._crop_origin(label, rng)
        rgb = np.ascontiguousarray(rgb[y0:y0 + ch, x0:x0 + cw])
        label = np.ascontiguousarray(label[y0:y0 + ch, x0:x0 + cw])
        edge = boundary_target(label)
        return (normalize(rgb, self.mean, self.std), torch.from_numpy(label.astype(np.int64)),
                torch.from_numpy(edge)[None])

    def _crop_origin(self, label: np.ndarray, rng: np.random.Generator) -> Tuple[int, int]:
        """Top-left corner of the crop: uniform, or (``class_uniform_p``) around a pixel
        of a class drawn uniformly from the frame's classes."""
        ch, cw = self.crop_size
        h, w = label.shape
        if self.class_uniform_p > 0 and rng.random() < self.class_uniform_p:
            classes = np.unique(label)
            classes = classes[classes != IGNORE]
            if classes.size:
                ys, xs = np.nonzero(label == rng.choice(classes))
                k = int(rng.integers(ys.size))
                # the chosen pixel lands at a uniform position inside the crop
                y0 = int(np.clip(ys[k] - rng.integers(ch), 0, h - ch))
                x0 = int(np.clip(xs[k] - rng.integers(cw), 0, w - cw))
                return y0, x0
        return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
