"""Bayer mosaics (8 and 16 bit, the four patterns) decode to the RGB image they sample.

ROS-free: messages are plain objects with the Image fields. The mosaics are made here
from a known RGB image, each pixel keeping the one channel its filter passes; the node
path (real DDS) is in test_node.py.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mfaranet_ros.encodings import SUPPORTED_ENCODINGS, ImageFormatError, image_to_rgb

PATTERNS = ("rggb", "bggr", "gbrg", "grbg")
CHANNEL = {"r": 0, "g": 1, "b": 2}


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """``(H, W)`` samples of ``(H, W, 3)`` ``rgb`` through the colour filter ``pattern``
    (its 2x2 tile from the top-left, row by row, as in the ROS encoding name)."""
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for i, colour in enumerate(pattern):
        dy, dx = divmod(i, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, CHANNEL[colour]]
    return out


def message(raw: np.ndarray, encoding: str, *, pad: int = 0, bigendian: bool = False):
    """An Image of ``(H, W)`` uint8 or uint16 samples, rows padded by ``pad`` bytes."""
    h, w = raw.shape
    if raw.dtype == np.uint16:
        raw = raw.astype(">u2" if bigendian else "<u2")
    rows = np.ascontiguousarray(raw).view(np.uint8).reshape(h, -1)
    rows = np.concatenate([rows, np.full((h, pad), 0xEE, np.uint8)], axis=1)
    return SimpleNamespace(height=h, width=w, encoding=encoding, step=rows.shape[1],
                           is_bigendian=int(bigendian), data=rows.tobytes())


def ramp(h: int = 24, w: int = 32) -> np.ndarray:
    """A smooth RGB image: red grows left to right, blue top to bottom, green constant."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([40 + 5 * x, np.full_like(x, 120), 30 + 6 * y], -1).astype(np.uint8)


def test_every_bayer_encoding_is_supported():
    for pattern in PATTERNS:
        for bits in (8, 16):
            assert f"bayer_{pattern}{bits}" in SUPPORTED_ENCODINGS


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_uniform_colour_comes_back_exactly(pattern):
    """Distinct R, G and B: a swapped pattern (R for B, or G on the wrong sites) would show."""
    rgb = np.empty((10, 14, 3), np.uint8)
    rgb[...] = (200, 100, 30)
    out = image_to_rgb(message(mosaic(rgb, pattern), f"bayer_{pattern}8"))
    assert out.shape == (10, 14, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_smooth_image_is_recovered_inside_the_border(pattern):
    rgb = ramp()
    out = image_to_rgb(message(mosaic(rgb, pattern), f"bayer_{pattern}8"))
    # bilinear interpolation of a linear ramp is exact away from the border
    error = np.abs(out.astype(int) - rgb.astype(int))[2:-2, 2:-2]
    assert error.max() <= 1, (pattern, error.max())


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("bigendian", [False, True])
def test_sixteen_bit_is_its_high_byte_in_either_byte_order(pattern, bigendian):
    rgb = ramp()
    raw8 = mosaic(rgb, pattern)
    # the low byte is noise the decoder must drop, in whichever byte order it comes
    noise = np.random.default_rng(0).integers(0, 256, raw8.shape, dtype=np.uint16)
    raw16 = (raw8.astype(np.uint16) << 8) | noise
    out16 = image_to_rgb(message(raw16, f"bayer_{pattern}16", bigendian=bigendian))
    np.testing.assert_array_equal(out16, image_to_rgb(message(raw8, f"bayer_{pattern}8")))


@pytest.mark.parametrize("encoding,dtype", [("bayer_grbg8", np.uint8),
                                            ("bayer_bggr16", np.uint16)])
def test_padded_rows_are_skipped(encoding, dtype):
    raw = mosaic(ramp(), encoding[6:10]).astype(dtype)
    if dtype == np.uint16:
        raw = raw << 8
    plain = image_to_rgb(message(raw, encoding))
    padded = image_to_rgb(message(raw, encoding, pad=6))
    np.testing.assert_array_equal(padded, plain)


def test_eight_bit_data_called_sixteen_bit_is_refused_naming_the_layout():
    msg = message(mosaic(ramp(), "rggb"), "bayer_rggb16")  # one byte per sample
    with pytest.raises(ImageFormatError, match="step too small: 32 < width x 2 bytes"):
        image_to_rgb(msg)
    msg.step = msg.width * 2
    with pytest.raises(ImageFormatError, match="data shorter than step x height"):
        image_to_rgb(msg)
