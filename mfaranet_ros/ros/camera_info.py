"""``~/camera_info``: the camera's calibration, described for the label image.

Where a camera publishes ``camera_info`` beside its image (the ROS convention: the image
topic's namespace, ``/cam/image_raw`` -> ``/cam/camera_info``), the node keeps the newest
one and publishes, with each label image, a copy that describes that label image exactly:
the same header, its width and height, and K, P and the ROI scaled to it. At camera
resolution the label image is the camera image's size, so only the header changes. At
network resolution (``label_resolution: network``) the label image is the camera image's
region of the letterboxed network input (the padding cut off, so it covers the whole
camera image, nothing else) at the letterbox scale: K and P rows 0 and 1 are scaled by
``label_width / width`` and ``label_height / height``, as image_proc's resize does, the
distortion is unchanged.
"""
from __future__ import annotations

from typing import Tuple

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo

from ..label_formats import scale_intrinsics

__all__ = ["camera_info_topic", "camera_info_qos", "for_labels", "size_mismatch"]


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


def size_mismatch(info: CameraInfo, frame_hw: Tuple[int, int]) -> str:
    """Why ``info`` does not describe a frame of ``frame_hw`` (``''`` when it does)."""
    if (info.height, info.width) == tuple(frame_hw):
        return ""
    return (f"camera_info is {info.width}x{info.height} but the image is "
            f"{frame_hw[1]}x{frame_hw[0]}")


def for_labels(info: CameraInfo, header, labels_hw: Tuple[int, int]) -> CameraInfo:
    """A copy of ``info`` for a label image of ``labels_hw`` with ``header``."""
    h, w = int(labels_hw[0]), int(labels_hw[1])
    out = CameraInfo(header=header, height=h, width=w,
                     distortion_model=info.distortion_model, d=list(info.d), r=info.r,
                     binning_x=info.binning_x, binning_y=info.binning_y)
    if (h, w) == (info.height, info.width):
        out.k, out.p, out.roi = info.k, info.p, info.roi
        return out
    k, p = scale_intrinsics(info.k, info.p, (info.height, info.width), (h, w))
    out.k, out.p = k.tolist(), p.tolist()
    sx, sy = w / info.width, h / info.height
    roi = info.roi
    out.roi.x_offset, out.roi.width = round(roi.x_offset * sx), round(roi.width * sx)
    out.roi.y_offset, out.roi.height = round(roi.y_offset * sy), round(roi.height * sy)
    out.roi.do_rectify = roi.do_rectify
    return out
