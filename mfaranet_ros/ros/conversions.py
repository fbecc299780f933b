"""numpy -> sensor_msgs/Image for publishing, without rclpy's slow paths.

Decoding (every encoding, compressed frames, label images) lives in
:mod:`mfaranet_ros.encodings`, below both the node and the bag reader; its names are
re-exported here for the node. What stays here is specific to rclpy's messages: writing
fills an ``array.array('B')`` with one memcpy, which rclpy's generated setter accepts
without a per-element check (assigning an ndarray costs about 260 ms for 6 MB), and
:class:`ImageBuffer` holds the CDR bytes of a message whose pixels are written in place,
which :func:`~.compat.publish_serialized` sends as they are.
Functions take plain objects with the message's field names.
"""
from __future__ import annotations

import array
import struct
import threading
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..encodings import SUPPORTED_ENCODINGS, ImageFormatError, compressed_to_rgb, image_to_rgb

__all__ = [
    "ImageFormatError",
    "SUPPORTED_ENCODINGS",
    "image_to_rgb",
    "compressed_to_rgb",
    "fill_image",
    "serialize_image",
    "ImageBuffer",
    "BufferPool",
    "image_size",
]


def fill_image(msg: Any, header: Any, pixels: np.ndarray, encoding: str) -> Any:
    """Fill a sensor_msgs/Image from an ``(H, W)`` or ``(H, W, C)`` uint8 array; returns msg.

    One memcpy into an ``array.array('B')``: the fast path rclpy accepts as is.
    """
    if pixels.dtype != np.uint8:
        raise ValueError(f"fill_image: expected uint8 pixels, got {pixels.dtype}")
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    data = array.array("B")
    data.frombytes(pixels.reshape(-1))
    msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = width * channels
    msg.data = data
    return msg


_CDR_LE = b"\x00\x01\x00\x00"  # encapsulation: plain CDR, little endian


def _cdr_string(out: bytearray, text: str) -> None:
    raw = text.encode("utf-8") + b"\x00"
    out += b"\x00" * (-len(out) % 4)
    out += struct.pack("<I", len(raw))
    out += raw


def _image_prefix(header: Any, height: int, width: int, channels: int, encoding: str) -> bytes:
    """A serialized sensor_msgs/Image up to its pixel bytes (the data length included)."""
    body = bytearray(struct.pack("<iI", header.stamp.sec, header.stamp.nanosec))
    _cdr_string(body, header.frame_id)
    body += b"\x00" * (-len(body) % 4)
    body += struct.pack("<II", height, width)
    _cdr_string(body, encoding)
    body += b"\x00"  # is_bigendian
    body += b"\x00" * (-len(body) % 4)
    body += struct.pack("<II", width * channels, height * width * channels)
    return _CDR_LE + bytes(body)


def _layout(header: Any, shape: Tuple[int, ...], encoding: str) -> Tuple[bytes, int]:
    """A message of ``shape`` (``(H, W)`` or ``(H, W, C)``) pixels: its bytes before the
    pixels, and the number of pixel bytes."""
    height, width = int(shape[0]), int(shape[1])
    channels = int(shape[2]) if len(shape) == 3 else 1
    return (_image_prefix(header, height, width, channels, encoding),
            height * width * channels)


class ImageBuffer:
    """A sensor_msgs/Image serialized (CDR) in one ``bytearray`` whose pixel region is a
    writable numpy array: the pixels are written there once, where they are made (the
    colour lookup, the blend, the download from a GPU), and :attr:`data` is what
    ``publish`` sends (:func:`~.compat.publish_serialized`).

    :meth:`frame` lays out the next message (header, size, encoding) in the same bytes: a
    buffer is reused from frame to frame (:class:`BufferPool`), so a frame allocates and
    zeroes nothing.
    """

    def __init__(self, size: int):
        self.data = bytearray(size)
        self.pixels: Optional[np.ndarray] = None

    def frame(self, header: Any, shape: Tuple[int, ...], encoding: str) -> np.ndarray:
        """Writes the message's fields for ``shape`` (``(H, W)`` or ``(H, W, C)``) pixels;
        returns the pixel region, ``(H, W[, C])`` uint8, to be filled. The buffer must
        be :func:`image_size` long for them."""
        return self._lay_out(*_layout(header, shape, encoding), shape, encoding)

    def _lay_out(self, prefix: bytes, count: int, shape: Tuple[int, ...],
                 encoding: str) -> np.ndarray:
        if len(prefix) + count != len(self.data):
            raise ValueError(f"ImageBuffer: {len(self.data)} bytes cannot hold a {shape} "
                             f"{encoding} image ({len(prefix) + count} bytes)")
        self.data[:len(prefix)] = prefix
        self.pixels = np.frombuffer(self.data, np.uint8, count, len(prefix)).reshape(shape)
        return self.pixels


def image_size(header: Any, shape: Tuple[int, ...], encoding: str) -> int:
    """The serialized size of a sensor_msgs/Image of ``shape`` pixels with ``header``."""
    prefix, count = _layout(header, shape, encoding)
    return len(prefix) + count


class BufferPool:
    """Reused :class:`ImageBuffer` s, by size: :meth:`take` one for a message, :meth:`give`
    it back once published (``publish`` has copied it by then). Thread-safe; at most
    ``keep`` idle buffers per size (one being filled while another is published)."""

    def __init__(self, keep: int = 2):
        self._lock = threading.Lock()
        self._idle: Dict[int, List[ImageBuffer]] = {}
        self._keep = keep
        self.allocated = 0   # buffers made, for the tests: a steady stream makes none

    def take(self, header: Any, shape: Tuple[int, ...], encoding: str) -> ImageBuffer:
        prefix, count = _layout(header, shape, encoding)   # serialized once per message
        size = len(prefix) + count
        with self._lock:
            idle = self._idle.get(size)
            buffer = idle.pop() if idle else None
            if buffer is None:
                self.allocated += 1
        if buffer is None:
            buffer = ImageBuffer(size)
        buffer._lay_out(prefix, count, shape, encoding)
        return buffer

    def give(self, buffer: ImageBuffer) -> None:
        buffer.pixels = None
        with self._lock:
            idle = self._idle.setdefault(len(buffer.data), [])
            if len(idle) < self._keep:
                idle.append(buffer)


def serialize_image(header: Any, pixels: np.ndarray, encoding: str) -> bytearray:
    """A sensor_msgs/Image already serialized (CDR), for
    :func:`~.compat.publish_serialized` (or ``publisher.publish(bytes(...))``).

    The same CDR layout as ``rclpy.serialization.serialize_message(fill_image(...))``
    (zeros where rclpy leaves its padding bytes uninitialised), but the pixels are copied
    once into the result instead of into a Python message, then into its C counterpart,
    then into the CDR buffer. Offsets are aligned relative to the end of the 4-byte
    encapsulation header. Where the pixels are made for the message, write them into an
    :class:`ImageBuffer` instead: no copy at all.
    """
    if pixels.dtype != np.uint8:
        raise ValueError(f"serialize_image: expected uint8 pixels, got {pixels.dtype}")
    prefix, count = _layout(header, pixels.shape, encoding)
    buffer = ImageBuffer(len(prefix) + count)
    np.copyto(buffer._lay_out(prefix, count, pixels.shape, encoding), pixels)
    return buffer.data
