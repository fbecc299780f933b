"""Label image formats for consumers, and camera_info for the label image (no ROS).

Autoware's mask encoding
------------------------
Autoware's ``segmentation_pointcloud_fusion`` (image_projection_based_fusion) reads a
sensor_msgs/Image whose ``height``/``width`` are the mask's and whose ``data`` is a list
of 5-byte run-length records in raster order: a uint8 class id, then the run length as
a 4-byte int copied with ``memcpy`` (little-endian on the x86-64 and arm64 machines it
runs on); ``encoding`` is ``mono8``. Checked against autoware_universe's
``perception_utils/run_length_encoder.cpp`` and the fusion node (main branch, 2025).

camera_info at network resolution
---------------------------------
The network input is letterboxed at the top-left corner (see
:mod:`mfaranet_ros.inference.processing`), and a network-resolution label image is the
*valid* region only (padding cropped), so it covers the whole camera image scaled by
``sx = valid_w / w`` and ``sy = valid_h / h`` with no offset. K and P scale like ROS's
``image_proc`` resize does: row 0 of K and P times ``sx``, row 1 times ``sy``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "LABEL_FORMATS",
    "LABEL_RESOLUTIONS",
    "AUTOWARE_RLE_RECORD",
    "autoware_rle_encode",
    "autoware_rle_decode",
    "scale_intrinsics",
    "confidence_to_mono8",
]

#: Values of the ``label_format`` parameter.
LABEL_FORMATS = ("mono8", "autoware_rle")
#: Values of the ``label_resolution`` parameter: the camera's size, or the network's scale.
LABEL_RESOLUTIONS = ("camera", "network")
#: One record: uint8 class id + little-endian int32 run length.
AUTOWARE_RLE_RECORD = np.dtype([("class_id", "u1"), ("length", "<i4")])


def autoware_rle_encode(labels: np.ndarray) -> bytes:
    """``(H, W)`` uint8 labels -> Autoware's run-length ``data`` (5 bytes per run)."""
    if labels.dtype != np.uint8 or labels.ndim != 2 or labels.size == 0:
        raise ValueError(f"expected non-empty (H, W) uint8 labels, got {labels.dtype} "
                         f"{labels.shape}")
    flat = labels.ravel()
    # A run starts at 0 and wherever the value changes from the previous pixel.
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    records = np.empty(starts.size, AUTOWARE_RLE_RECORD)
    records["class_id"] = flat[starts]
    records["length"] = np.diff(np.append(starts, flat.size))
    return records.tobytes()


def autoware_rle_decode(data: bytes, height: int, width: int) -> np.ndarray:
    """Autoware's run-length ``data`` -> ``(height, width)`` uint8 labels.

    The node never decodes; this is for Python consumers of ``~/labels`` in
    ``autoware_rle`` (and the tests that check the encoder against it).

    Raises ValueError when the records are truncated or do not cover the image exactly.
    """
    if len(data) % AUTOWARE_RLE_RECORD.itemsize:
        raise ValueError(f"{len(data)} bytes is not a whole number of 5-byte records")
    records = np.frombuffer(data, AUTOWARE_RLE_RECORD)
    lengths = records["length"].astype(np.int64)
    if (lengths < 0).any() or int(lengths.sum()) != height * width:
        raise ValueError(f"run lengths sum to {int(lengths.sum())}, the mask has "
                         f"{height}x{width} = {height * width} pixels")
    return np.repeat(records["class_id"], lengths).reshape(height, width)


def scale_intrinsics(k: Sequence[float], p: Sequence[float], source: Tuple[int, int],
                     target: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """camera_info's K (9) and P (12) for an image resized ``source`` -> ``target`` (h, w).

    Returns float64 ``(9,)`` and ``(12,)`` arrays: row 0 scaled by ``target_w / source_w``,
    row 1 by ``target_h / source_h``, row 2 unchanged (so P's Tx, Ty scale too).
    """
    sy = target[0] / source[0]
    sx = target[1] / source[1]
    k_out = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
    p_out = np.asarray(p, dtype=np.float64).reshape(3, 4).copy()
    for matrix in (k_out, p_out):
        matrix[0] *= sx
        matrix[1] *= sy
    return k_out.ravel(), p_out.ravel()


def confidence_to_mono8(confidence: np.ndarray,
                        out: Optional[np.ndarray] = None) -> np.ndarray:
    """``(H, W)`` float top-class softmax probability -> ``(H, W)`` uint8, ``round(p * 255)``;
    ``out``: written there (e.g. a message's buffer).

    The 0..255 confidence image Nav2's semantic segmentation layer reads.
    """
    import cv2

    # One saturating, rounding pass (8x numpy's rint/clip/astype at 1024x2048: 0.4 against
    # 3.3 ms); the same values (half to even, as np.rint).
    mono8 = cv2.convertScaleAbs(np.asarray(confidence, np.float32), dst=out, alpha=255.0)
    if out is not None and mono8 is not out:
        np.copyto(out, mono8)
        return out
    return mono8
