"""Image encodings without ROS: every raw encoding, padding, endianness, compressed
input, label images and malformed frames (messages are plain objects with the fields)."""
from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mfaranet_ros.encodings import (
    RAW_ENCODINGS,
    SUPPORTED_ENCODINGS,
    ImageFormatError,
    compressed_to_labels,
    compressed_to_rgb,
    encode_compressed,
    image_to_labels,
    image_to_rgb,
    raw_layout,
)


class Image(SimpleNamespace):
    """The fields of a sensor_msgs/Image, as any message library fills them."""

    def __init__(self, **fields):
        super().__init__(**{"header": None, "height": 0, "width": 0, "encoding": "",
                            "is_bigendian": 0, "step": 0, "data": b"", **fields})


class CompressedImage(SimpleNamespace):
    def __init__(self, **fields):
        super().__init__(**{"header": None, "format": "", "data": b"", **fields})


def _rgb(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _msg(packed: np.ndarray, encoding: str, *, pad: int = 0, bigendian: int = 0) -> Image:
    """An Image whose rows are ``packed`` (H, row_bytes) plus ``pad`` junk bytes each."""
    h = packed.shape[0]
    rows = packed.reshape(h, -1)
    if pad:
        rows = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    m = Image()
    m.height, m.width = h, packed.shape[1]
    m.encoding, m.is_bigendian, m.step = encoding, bigendian, rows.shape[1]
    m.data = array.array("B", rows.tobytes())
    return m


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "8UC3"])
def test_colour_encodings_give_rgb(encoding, pad):
    rgb = _rgb()
    packed = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "8UC3": rgb[..., ::-1],
              "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
              "bgra8": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)])}[encoding]
    out = image_to_rgb(_msg(np.ascontiguousarray(packed), encoding, pad=pad))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


def test_rgb8_without_padding_is_zero_copy():
    m = _msg(_rgb(), "rgb8")
    out = image_to_rgb(m)
    assert np.shares_memory(out, np.frombuffer(m.data, np.uint8))


@pytest.mark.parametrize("pad", [0, 3])
def test_mono8_is_replicated_to_three_channels(pad):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    out = image_to_rgb(_msg(gray, "mono8", pad=pad))
    assert out.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


@pytest.mark.parametrize("bigendian", [0, 1])
def test_mono16_honours_is_bigendian(bigendian):
    values = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000)
    raw = values.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(6, 16)
    m = _msg(raw, "mono16", bigendian=bigendian)
    m.width = 8
    out = image_to_rgb(m)
    np.testing.assert_array_equal(out[..., 0], (values >> 8).astype(np.uint8))


@pytest.mark.parametrize("encoding,order", [("yuv422_yuy2", "YUYV"), ("uyvy", "UYVY"),
                                            ("yuv422", "UYVY")])
def test_packed_yuv422(encoding, order):
    # a flat grey-ish colour: Y=120, U=V=128 is neutral grey (R=G=B close to Y)
    h, w = 4, 8
    y, u, v = 120, 128, 128
    pair = {"YUYV": [y, u, y, v], "UYVY": [u, y, v, y]}[order]
    packed = np.tile(np.array(pair, np.uint8), (h, w // 2))
    m = _msg(packed, encoding)
    m.width = w
    out = image_to_rgb(m)
    assert out.shape == (h, w, 3)
    assert np.all(np.abs(out.astype(int) - out[0, 0, 0]) <= 1)
    assert 110 <= int(out[0, 0, 0]) <= 130
    # a red-ish chroma must come out red in the R channel, not in B
    pair = {"YUYV": [82, 90, 82, 240], "UYVY": [90, 82, 240, 82]}[order]
    m = _msg(np.tile(np.array(pair, np.uint8), (h, w // 2)), encoding)
    m.width = w
    red = image_to_rgb(m)
    assert red[0, 0, 0] > 200 and red[0, 0, 2] < 60


def test_every_supported_encoding_converts():
    for enc in SUPPORTED_ENCODINGS:
        bpp = {"mono8": 1, "8uc1": 1, "mono16": 2, "16uc1": 2, "rgba8": 4, "bgra8": 4,
               "rgb8": 3, "bgr8": 3, "8uc3": 3}.get(enc, 2)
        m = _msg(np.zeros((4, 8 * bpp), np.uint8), enc)
        m.width = 8
        assert image_to_rgb(m).shape == (4, 8, 3), enc


@pytest.mark.parametrize("mutate,needle", [
    (lambda m: setattr(m, "encoding", "32FC1"), "unsupported encoding '32FC1'"),
    (lambda m: setattr(m, "height", 0), "zero-size"),
    (lambda m: setattr(m, "width", 0), "zero-size"),
    (lambda m: setattr(m, "step", 10), "step too small: 10 < width x 3"),
    (lambda m: setattr(m, "data", m.data[:-1]), "data shorter than step x height"),
])
def test_malformed_frames_are_refused_with_the_reason(mutate, needle):
    m = _msg(_rgb(), "rgb8")
    mutate(m)
    with pytest.raises(ImageFormatError, match=needle.replace("(", r"\(")):
        image_to_rgb(m)


def test_odd_width_yuv_is_refused():
    m = _msg(np.zeros((2, 6), np.uint8), "yuv422_yuy2")
    m.width = 3
    with pytest.raises(ImageFormatError, match="odd width"):
        image_to_rgb(m)


@pytest.mark.parametrize("ext,fmt", [(".png", "png"), (".jpg", "jpeg"),
                                     (".png", "rgb8; png compressed bgr8")])
def test_compressed_jpeg_and_png(ext, fmt):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12] = (200, 30, 40)
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    m = CompressedImage(format=fmt)
    m.data = array.array("B", buf.tobytes())
    out = compressed_to_rgb(m)
    assert out.shape == rgb.shape
    if ext == ".png":
        np.testing.assert_array_equal(out, rgb)
    else:  # lossy: compare away from the colour edge; a BGR/RGB swap would be off by 160
        for cols in (slice(0, 8), slice(16, 24)):
            diff = np.abs(out[:, cols].astype(int) - rgb[:, cols].astype(int))
            assert diff.max() <= 12


@pytest.mark.parametrize("data,fmt,needle", [
    (b"\xff\xd8\xff\xe0garbage" * 4, "jpeg", "corrupt or undecodable"),
    (b"", "jpeg", "empty compressed image"),
    (b"1234", "tiff", "unsupported compressed format"),
])
def test_bad_compressed_frames_are_refused(data, fmt, needle):
    m = CompressedImage(format=fmt)
    m.data = array.array("B", data)
    with pytest.raises(ImageFormatError, match=needle):
        compressed_to_rgb(m)


def test_label_images_mono8_and_png():
    labels = np.arange(35, dtype=np.uint8).reshape(5, 7)
    out = image_to_labels(_msg(labels, "mono8", pad=3))
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, labels)
    ok, png = cv2.imencode(".png", labels)
    m = CompressedImage(format="png", data=array.array("B", png.tobytes()))
    np.testing.assert_array_equal(compressed_to_labels(m), labels)
    with pytest.raises(ImageFormatError, match="expected mono8"):
        image_to_labels(_msg(_rgb(), "rgb8"))
    ok, png = cv2.imencode(".png", _rgb())
    with pytest.raises(ImageFormatError, match="single-channel"):
        compressed_to_labels(CompressedImage(format="png", data=array.array("B", png.tobytes())))


def test_encode_compressed_round_trip():
    rgb = np.zeros((8, 12, 3), np.uint8)
    rgb[:, :6] = (10, 200, 30)
    png = CompressedImage(format="png", data=encode_compressed(rgb, "png"))
    np.testing.assert_array_equal(compressed_to_rgb(png), rgb)
    jpg = CompressedImage(format="jpeg", data=encode_compressed(rgb, "jpeg", 95))
    assert np.abs(compressed_to_rgb(jpg)[:, :4].astype(int) - rgb[:, :4]).max() <= 12
    with pytest.raises(ImageFormatError, match="tiff"):
        encode_compressed(rgb, "tiff")


def test_raw_layout():
    assert raw_layout(np.zeros((2, 5), np.uint8)) == ("mono8", 5)
    assert raw_layout(np.zeros((2, 5, 3), np.uint8)) == ("rgb8", 15)
    assert raw_layout(np.zeros((2, 5, 4), np.uint8)) == ("rgba8", 20)
    assert raw_layout(np.zeros((2, 5, 3), np.uint8), "bgr8") == ("bgr8", 15)
    with pytest.raises(ValueError, match="uint8"):
        raw_layout(np.zeros((2, 5), np.float32))


def test_the_decode_table_is_the_supported_list():
    assert set(SUPPORTED_ENCODINGS) == set(RAW_ENCODINGS)
    assert all(name == name.lower() for name in RAW_ENCODINGS)


def test_no_ros_import():
    """The module sits below the node and the bag reader: numpy and OpenCV only."""
    import subprocess
    import sys

    code = ("import sys, mfaranet_ros.encodings; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('rclpy', 'sensor_msgs', 'rosbags', 'torch') or m.startswith('mfaranet_ros.ros')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
