"""Image encodings of sensor_msgs/Image and CompressedImage <-> numpy, without ROS.

The node, the bag reader and the live evaluation decode camera frames here, so a frame
gives the same pixels whichever way it arrives. Functions take any object with the
message's field names (an rclpy message, a ``rosbags`` message, a ``SimpleNamespace``),
so this module needs numpy and OpenCV only.

Reading uses ``np.frombuffer`` on the message's buffer: for rgb8 without row padding the
result is a view of it (no copy).

To support another raw encoding, add one entry to :data:`RAW_ENCODINGS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

__all__ = [
    "ImageFormatError",
    "RawEncoding",
    "RAW_ENCODINGS",
    "SUPPORTED_ENCODINGS",
    "LABEL_ENCODINGS",
    "image_to_rgb",
    "compressed_to_rgb",
    "image_to_labels",
    "compressed_to_labels",
    "encode_compressed",
    "raw_layout",
]


class ImageFormatError(ValueError):
    """A frame that cannot be converted; the message names what is wrong with it."""


@dataclass(frozen=True)
class RawEncoding:
    """How the bytes of one raw encoding become an ``(H, W, 3)`` uint8 RGB image.

    ``bytes_per_pixel`` and ``channels`` describe the packed row (4:2:2 YUV: 2 bytes
    and 2 channels per pixel); ``to_rgb`` is the OpenCV colour conversion from those
    channels, ``None`` when they are RGB already; ``sixteen_bit`` data is reduced to
    its high byte (honouring ``is_bigendian``) before the conversion; ``width_multiple``
    is what the width must divide by (a 4:2:2 pair shares its chroma).
    """

    bytes_per_pixel: int
    channels: int
    to_rgb: Optional[int]
    sixteen_bit: bool = False
    width_multiple: int = 1


#: Every raw encoding the package decodes, by lower-case name.
RAW_ENCODINGS: Dict[str, RawEncoding] = {
    "rgb8": RawEncoding(3, 3, None),
    "bgr8": RawEncoding(3, 3, cv2.COLOR_BGR2RGB),
    "8uc3": RawEncoding(3, 3, cv2.COLOR_BGR2RGB),
    "rgba8": RawEncoding(4, 4, cv2.COLOR_RGBA2RGB),
    "bgra8": RawEncoding(4, 4, cv2.COLOR_BGRA2RGB),
    "mono8": RawEncoding(1, 1, cv2.COLOR_GRAY2RGB),
    "8uc1": RawEncoding(1, 1, cv2.COLOR_GRAY2RGB),
    "mono16": RawEncoding(2, 1, cv2.COLOR_GRAY2RGB, sixteen_bit=True),
    "16uc1": RawEncoding(2, 1, cv2.COLOR_GRAY2RGB, sixteen_bit=True),
    "yuv422_yuy2": RawEncoding(2, 2, cv2.COLOR_YUV2RGB_YUY2, width_multiple=2),  # Y0 U Y1 V
    "yuyv": RawEncoding(2, 2, cv2.COLOR_YUV2RGB_YUY2, width_multiple=2),
    # ROS's "yuv422" is UYVY: U Y0 V Y1
    "yuv422": RawEncoding(2, 2, cv2.COLOR_YUV2RGB_UYVY, width_multiple=2),
    "uyvy": RawEncoding(2, 2, cv2.COLOR_YUV2RGB_UYVY, width_multiple=2),
}

SUPPORTED_ENCODINGS = tuple(sorted(RAW_ENCODINGS))
#: Encodings a label image (trainIds, one byte per pixel) may carry.
LABEL_ENCODINGS = ("mono8", "8uc1")


def _describe(msg: Any) -> str:
    return (f"encoding {msg.encoding!r}, {msg.width}x{msg.height}, step {msg.step}, "
            f"{len(msg.data)} bytes")


def _packed_rows(msg: Any, bytes_per_pixel: int) -> np.ndarray:
    """``(H, W * bytes_per_pixel)`` uint8 view of the image's rows, padding dropped."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"zero-size image ({_describe(msg)})")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise ImageFormatError(f"step too small: {step} < width x {bytes_per_pixel} bytes = "
                               f"{row_bytes} ({_describe(msg)})")
    data = np.frombuffer(msg.data, np.uint8)
    if data.size < step * height:
        raise ImageFormatError(f"data shorter than step x height = {step * height} "
                               f"({_describe(msg)})")
    return data[: step * height].reshape(height, step)[:, :row_bytes]


def image_to_rgb(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image as an ``(H, W, 3)`` uint8 RGB array.

    Row padding (``step`` > width x bytes per pixel) is skipped and ``is_bigendian`` is
    honoured for 16-bit data. For rgb8 without padding the result is a view of the
    message buffer (no copy). Raises :class:`ImageFormatError` naming the problem.
    """
    spec = RAW_ENCODINGS.get(str(msg.encoding).lower())
    if spec is None:
        raise ImageFormatError(f"unsupported encoding {msg.encoding!r} "
                               f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if int(msg.width) % spec.width_multiple:
        raise ImageFormatError(f"odd width for {msg.encoding!r}, which packs "
                               f"{spec.width_multiple} pixels together ({_describe(msg)})")
    rows = _packed_rows(msg, spec.bytes_per_pixel)
    height, width = int(msg.height), int(msg.width)
    if spec.sixteen_bit:
        order = ">" if getattr(msg, "is_bigendian", 0) else "<"
        wide = np.ascontiguousarray(rows).view(order + "u2").reshape(height, width)
        pixels = (wide >> 8).astype(np.uint8)
    else:
        pixels = rows.reshape(height, width, spec.channels)
        if int(msg.step) != rows.shape[1]:  # padded rows: OpenCV wants them contiguous
            pixels = np.ascontiguousarray(pixels)
        if spec.channels == 1:
            pixels = pixels.reshape(height, width)
    if spec.to_rgb is None:
        return pixels
    return cv2.cvtColor(pixels, spec.to_rgb)


def _compressed_buffer(msg: Any) -> np.ndarray:
    fmt = str(msg.format).lower()
    if fmt and "jpeg" not in fmt and "jpg" not in fmt and "png" not in fmt:
        raise ImageFormatError(f"unsupported compressed format {msg.format!r} (jpeg or png)")
    buf = np.frombuffer(msg.data, np.uint8)
    if buf.size == 0:
        raise ImageFormatError(f"empty compressed image (format {msg.format!r})")
    return buf


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg or png) as an ``(H, W, 3)`` uint8 RGB array."""
    buf = _compressed_buffer(msg)
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageFormatError(f"corrupt or undecodable compressed image "
                               f"(format {msg.format!r}, {buf.size} bytes)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_to_labels(msg: Any) -> np.ndarray:
    """A mono8 label image (trainIds) as ``(H, W)`` uint8, row padding dropped (a copy)."""
    if str(msg.encoding).lower() not in LABEL_ENCODINGS:
        raise ImageFormatError(f"label image has encoding {msg.encoding!r}; "
                               f"expected mono8 trainIds")
    return np.ascontiguousarray(_packed_rows(msg, 1))


def compressed_to_labels(msg: Any) -> np.ndarray:
    """A single-channel PNG label image (trainIds) as ``(H, W)`` uint8."""
    buf = _compressed_buffer(msg)
    labels = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise ImageFormatError(f"compressed label image (format {msg.format!r}, "
                               f"{buf.size} bytes) does not decode")
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ImageFormatError(f"compressed label image is {labels.dtype} with shape "
                               f"{labels.shape}; expected a single-channel 8-bit PNG")
    return labels


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 92) -> bytes:
    """An ``(H, W, 3)`` uint8 RGB image as the data of a CompressedImage (jpeg or png)."""
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt.lower())
    if ext is None:
        raise ImageFormatError(f"cannot compress to {fmt!r} (jpeg or png)")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageFormatError(f"{fmt} encoding of a {rgb.shape} image failed")
    return buf.tobytes()


def raw_layout(pixels: np.ndarray, encoding: Optional[str] = None) -> Tuple[str, int]:
    """``(encoding, step)`` for writing uint8 ``pixels`` as a raw Image, rows unpadded.

    ``(H, W)`` is mono8 and ``(H, W, 3|4)`` rgb8|rgba8 unless ``encoding`` says otherwise.
    """
    if pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        return encoding or "mono8", int(pixels.shape[1])
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        channels = int(pixels.shape[2])
        return encoding or ("rgb8" if channels == 3 else "rgba8"), int(pixels.shape[1]) * channels
    raise ValueError(f"expected (H, W) or (H, W, 3|4) pixels, got {pixels.shape}")
