"""The node's publish path: numpy -> sensor_msgs/Image (fill_image, serialize_image) on
real rclpy messages, and the decoders re-exported for the node."""
from __future__ import annotations

import array
import time

import numpy as np
import pytest

from mfaranet_ros.ros.conversions import fill_image, image_to_rgb

pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 message packages")
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402


def _rgb(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_real_messages_decode_with_padding_and_without_copy():
    rgb = _rgb()
    m = Image(height=6, width=8, encoding="bgr8", step=8 * 3 + 4)
    rows = np.concatenate([rgb[..., ::-1].reshape(6, -1), np.zeros((6, 4), np.uint8)], axis=1)
    m.data = array.array("B", rows.tobytes())
    np.testing.assert_array_equal(image_to_rgb(m), rgb)
    m = fill_image(Image(), Header(), rgb, "rgb8")
    assert np.shares_memory(image_to_rgb(m), np.frombuffer(m.data, np.uint8))


def test_fill_image_round_trip_and_header():
    rgb = _rgb(5, 7)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    m = fill_image(Image(), header, rgb, "rgb8")
    assert (m.height, m.width, m.step, m.encoding) == (5, 7, 21, "rgb8")
    assert m.header.frame_id == "cam" and m.header.stamp.nanosec == 345
    np.testing.assert_array_equal(image_to_rgb(m), rgb)
    labels = np.arange(35, dtype=np.uint8).reshape(5, 7)
    m = fill_image(Image(), header, labels, "mono8")
    assert m.step == 7 and bytes(m.data) == labels.tobytes()


def test_fill_image_is_the_fast_path():
    """6 MB frame: the array.array path costs about a memcpy, not rclpy's per-element
    check (~260 ms for an ndarray, docs/performance.md)."""
    big = np.zeros((1024, 2048, 3), np.uint8)
    fill_image(Image(), Header(), big, "rgb8")
    t0 = time.perf_counter()
    for _ in range(5):
        fill_image(Image(), Header(), big, "rgb8")
    per_frame_ms = (time.perf_counter() - t0) / 5 * 1000
    assert per_frame_ms < 40, per_frame_ms


def test_fill_image_refuses_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        fill_image(Image(), Header(), np.zeros((2, 2), np.float32), "mono8")


@pytest.mark.parametrize("frame_id,encoding,shape", [
    ("", "mono8", (3, 5)), ("cam", "rgb8", (4, 6, 3)), ("front_optical_frame", "rgb8", (2, 1, 3)),
    ("abcd", "mono8", (1, 7)), ("é", "rgb8", (3, 3, 3))])
def test_serialize_image_matches_rclpy(frame_id, encoding, shape):
    """Same layout as rclpy's serializer (its padding bytes are left uninitialised, so
    the comparison is by length and by the message read back)."""
    from rclpy.serialization import deserialize_message, serialize_message

    from mfaranet_ros.ros.conversions import serialize_image

    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = -5, 999_999_999
    ours = serialize_image(header, pixels, encoding)
    reference = fill_image(Image(), header, pixels, encoding)
    assert len(ours) == len(serialize_message(reference))
    back = deserialize_message(bytes(ours), Image)
    assert back == reference
    assert back.header.frame_id == frame_id and back.encoding == encoding
    np.testing.assert_array_equal(np.frombuffer(back.data, np.uint8), pixels.reshape(-1))
