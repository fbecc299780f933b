"""``~/camera_info``: the camera's calibration, described for the label image.

Where a camera publishes ``camera_info`` beside its image (the ROS convention: the image
topic's namespace, ``/cam/image_raw`` -> ``/cam/camera_info``), the node keeps the newest
one and publishes, with each label image, one that describes that label image exactly.

A camera_info is read as REP 104 and image_geometry's ``PinholeCameraModel`` read it:
``width``/``height``, K and P are the *calibration* (full sensor) resolution; the image on
the wire is the ROI (all zeros: the full size), offset first, then divided by the binning
(0 and 1: none). So a binned or ROI camera sends frames of that *effective* size, and such a
frame is not a mismatch.

- **Camera resolution** (``label_resolution: camera``): the label image is the camera
  image's size, so the camera_info goes out as it came (calibration size, binning, ROI, K,
  P), with the label image's header: it describes the label image exactly as the input
  describes the camera image.
- **Network resolution**: the label image is the camera image scaled by the letterbox
  (:mod:`mfaranet_ros.label_formats`). ROI and binning are folded into K and P as
  image_geometry does (``fx / binning_x``, ``(cx - x_offset) / binning_x``; here the whole
  rows 0 and 1 of P, so a stereo camera's Tx scales too), then rows 0 and 1 are scaled to
  the label image, as image_proc's resize does. It goes out with the label image's size,
  binning 0 and an empty ROI. Distortion is unchanged.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, RegionOfInterest

from ..label_formats import scale_intrinsics

__all__ = ["camera_info_topic", "camera_info_qos", "effective_size", "folded_intrinsics",
           "for_labels",
           "size_mismatch"]


def camera_info_topic(image_topic: str) -> str:
    """``/cam/image_raw`` (or ``/cam/image_raw/compressed``) -> ``/cam/camera_info``."""
    topic = image_topic[: -len("/compressed")] if image_topic.endswith("/compressed") \
        else image_topic
    namespace = topic.rsplit("/", 1)[0]
    return f"{namespace}/camera_info"


def camera_info_qos() -> QoSProfile:
    """Best effort matches every camera driver's publisher, reliable or not."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def _roi_is_full(roi: RegionOfInterest) -> bool:
    return roi.x_offset == 0 and roi.y_offset == 0 and roi.width == 0 and roi.height == 0


def _binning(info: CameraInfo) -> Tuple[int, int]:
    return max(1, int(info.binning_y)), max(1, int(info.binning_x))


def effective_size(info: CameraInfo) -> Tuple[int, int]:
    """(H, W) of the images ``info`` describes: its ROI (or full size) divided by binning."""
    by, bx = _binning(info)
    if _roi_is_full(info.roi):
        h, w = int(info.height), int(info.width)
    else:
        h, w = int(info.roi.height), int(info.roi.width)
    return h // by, w // bx


def size_mismatch(info: CameraInfo, frame_hw: Tuple[int, int]) -> str:
    """Why ``info`` does not describe a frame of ``frame_hw`` (``''`` when it does)."""
    h, w = effective_size(info)
    if (h, w) == tuple(int(v) for v in frame_hw):
        return ""
    how = f"camera_info is {info.width}x{info.height}"
    if (h, w) != (info.height, info.width):
        how += f" (its ROI and binning: images of {w}x{h})"
    return f"{how} but the image is {frame_hw[1]}x{frame_hw[0]}"


def folded_intrinsics(info: CameraInfo) -> Tuple[np.ndarray, np.ndarray]:
    """K (9) and P (12) for the effective image: ROI offset subtracted, then binning divided
    (image_geometry's adjustment)."""
    by, bx = _binning(info)
    k = np.asarray(info.k, dtype=np.float64).reshape(3, 3).copy()
    p = np.asarray(info.p, dtype=np.float64).reshape(3, 4).copy()
    x0 = 0 if _roi_is_full(info.roi) else int(info.roi.x_offset)
    y0 = 0 if _roi_is_full(info.roi) else int(info.roi.y_offset)
    for m in (k, p):
        m[0] = (m[0] - x0 * m[2]) / bx
        m[1] = (m[1] - y0 * m[2]) / by
    return k.ravel(), p.ravel()


def for_labels(info: CameraInfo, header, labels_hw: Tuple[int, int]) -> CameraInfo:
    """``info`` for a label image of ``labels_hw`` with ``header`` (module docstring)."""
    h, w = int(labels_hw[0]), int(labels_hw[1])
    if (h, w) == effective_size(info):
        return CameraInfo(header=header, height=info.height, width=info.width,
                          distortion_model=info.distortion_model, d=list(info.d), k=info.k,
                          r=info.r, p=info.p, binning_x=info.binning_x,
                          binning_y=info.binning_y, roi=info.roi)
    k, p = folded_intrinsics(info)
    k, p = scale_intrinsics(k, p, effective_size(info), (h, w))
    return CameraInfo(header=header, height=h, width=w, distortion_model=info.distortion_model,
                      d=list(info.d), k=k.tolist(), r=info.r, p=p.tolist(), binning_x=0,
                      binning_y=0, roi=RegionOfInterest())
