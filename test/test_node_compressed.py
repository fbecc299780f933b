"""``input_transport: compressed`` (jpeg, png) in a namespace, parameters from the YAML, at
full resolution (``input_size: [0, 0]``): the backend is prepared at each new frame size."""
from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_helpers import (  # noqa: E402
    CAR,
    CAR_RGB,
    REPO,
    Client,
    NodeProcess,
    constant_checkpoint,
    kv,
    reliable,
    to_array,
)
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compressed")
    ckpt = constant_checkpoint(tmp / "car.pth")
    proc = NodeProcess(tmp, "-r", "__ns:=/front", "--params-file",
                       str(REPO / "config" / "segment.yaml"), "-p", f"weights:={ckpt}",
                       "-p", "backend:=torch", "-p", "input_size:=[0, 0]",
                       "-p", "input_transport:=compressed", "-p", "qos_reliability:=reliable")
    yield proc
    if proc.proc.poll() is None:
        assert proc.interrupt() == 0, proc.output()


@pytest.fixture(scope="module")
def client(node):
    c = Client("mfaranet_compressed_test")
    c.collect(Image, "/front/mfaranet/overlay", reliable(5), "overlay")
    c.collect(Image, "/front/mfaranet/labels", reliable(5), "labels")
    c.collect(DiagnosticArray, "/diagnostics", reliable(20), "diag")
    c.pub = c.node.create_publisher(CompressedImage, "/front/image/compressed", reliable(1))
    try:
        c.wait_for_node(c.pub, node)
        yield c
    finally:
        c.close()


def _compressed(rgb, ext, fmt, sec):
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    m = CompressedImage(format=fmt)
    m.header.stamp.sec = sec
    m.header.frame_id = "front_cam"
    m.data = array.array("B", buf.tobytes())
    return m


def _wait_stamp(client, key, sec):
    client.wait_until(lambda: any(m.header.stamp.sec == sec for m in client.messages(key)),
                      10.0, f"{key} for stamp {sec}")
    return [m for m in client.messages(key) if m.header.stamp.sec == sec][-1]


@pytest.mark.parametrize("ext,fmt,sec", [(".jpg", "jpeg", 1), (".png", "png", 2),
                                         (".jpg", "bgr8; jpeg compressed bgr8", 3)])
def test_jpeg_and_png_frames(client, ext, fmt, sec):
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[...] = (200, 120, 40)
    client.pub.publish(_compressed(rgb, ext, fmt, sec))
    overlay = _wait_stamp(client, "overlay", sec)
    labels = _wait_stamp(client, "labels", sec)
    assert (overlay.width, overlay.height, overlay.header.frame_id) == (128, 96, "front_cam")
    assert np.all(to_array(labels) == CAR)
    expected = rgb.astype(float) * 0.5 + np.array(CAR_RGB) * 0.5
    assert np.abs(to_array(overlay)[48, 64] - expected[48, 64]).max() <= 6


def test_corrupt_jpeg_is_rejected_then_the_next_frame_processed(node, client):
    bad = CompressedImage(format="jpeg")
    bad.header.stamp.sec = 10
    bad.data = array.array("B", b"\xff\xd8\xff\xe0 not really a jpeg" * 8)
    client.pub.publish(bad)
    client.wait_until(lambda: client.messages("diag") and int(
        kv(client.messages("diag")[-1].status[0])["frames_rejected"]) >= 1, 6.0, "a reject")
    reason = kv(client.messages("diag")[-1].status[0])["last_reject_reason"]
    assert "corrupt or undecodable compressed image" in reason
    client.pub.publish(_compressed(np.zeros((32, 48, 3), np.uint8), ".png", "png", 11))
    _wait_stamp(client, "overlay", 11)
    assert not any(m.header.stamp.sec == 10 for m in client.messages("overlay"))
    assert "rejected a frame on /front/image/compressed" in node.output()


def test_best_effort_camera_against_forced_reliable_is_explained(client):
    """qos_reliability: reliable cannot match a best-effort camera: /diagnostics says why
    no images arrive (incompatible QoS, policy RELIABILITY) with a WARN."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    be = client.node.create_publisher(
        CompressedImage, "/front/image/compressed",
        QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        client.wait_until(lambda: client.messages("diag") and int(kv(
            client.messages("diag")[-1].status[0])["qos_incompatible_publishers"]) >= 1,
            8.0, "the incompatible-publisher count")
        status = client.messages("diag")[-1].status[0]
        assert kv(status)["qos_last_policy"] == "RELIABILITY"
        assert kv(status)["qos_last_topic"] == "/front/image/compressed"
        assert kv(status)["input_reliability"] == "reliable"
        assert status.level == b"\x01" and "incompatible publishers" in status.message
    finally:
        client.node.destroy_publisher(be)


def test_full_resolution_prepares_each_frame_size_once(node, client):
    """No warm-up at a guessed size: the first frame of each size prepares the backend."""
    for sec, shape in ((20, (96, 128, 3)), (21, (96, 128, 3)), (22, (32, 48, 3))):
        client.pub.publish(_compressed(np.zeros(shape, np.uint8), ".png", "png", sec))
        assert _wait_stamp(client, "overlay", sec).width == shape[1]
    log = node.output()
    assert "network input full resolution, requested (input_size [0, 0])" in log
    assert "each new camera size is prepared at its first frame (labels and confidence)" in log
    assert log.count("prepared the backend for 96x128 frames") == 1
    assert log.count("prepared the backend for 32x48 frames") == 1
