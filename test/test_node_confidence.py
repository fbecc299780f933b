"""~/confidence over real DDS: mono8 round(p * 255) of the top class, the labels' header."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from ros_helpers import (  # noqa: E402
    REPO,
    Client,
    NodeProcess,
    constant_checkpoint,
    image_msg,
    reliable,
    to_array,
)
from sensor_msgs.msg import Image  # noqa: E402

from mfaranet_ros.inference.segmenter import Segmenter  # noqa: E402
from mfaranet_ros.label_formats import confidence_to_mono8  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_confidence_matches_the_segmenters_and_the_labels_header(tmp_path):
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    node = NodeProcess(tmp_path, "--params-file", str(REPO / "config" / "segment.yaml"),
                       "-p", f"weights:={ckpt}", "-p", "backend:=torch", "-p", "device:=cpu",
                       "-p", "input_size:=[64, 128]")
    client = Client("mfaranet_confidence_test")
    try:
        client.collect(Image, "/mfaranet/confidence", reliable(5), "confidence")
        client.collect(Image, "/mfaranet/labels", reliable(5), "labels")
        pub = client.node.create_publisher(Image, "/image", reliable(1))
        client.wait_for_node(pub, node, 120.0)
        rng = np.random.default_rng(1)
        frame = rng.integers(0, 256, size=(48, 96, 3), dtype=np.uint8)
        pub.publish(image_msg(frame, "rgb8", stamp=(7, 5)))
        client.wait_until(lambda: client.messages("confidence") and client.messages("labels"),
                          60.0, "confidence and labels")
        conf, labels = client.messages("confidence")[0], client.messages("labels")[0]
        assert conf.encoding == "mono8" and conf.header == labels.header
        assert (conf.height, conf.width) == (labels.height, labels.width) == (48, 96)
        # The same frame through the same weights in this process.
        seg = Segmenter.from_checkpoint(ckpt, backend="torch", device="cpu",
                                        input_size=(64, 128))
        expected = confidence_to_mono8(seg.segment(frame, confidence=True).confidence)
        assert np.abs(to_array(conf).astype(int) - expected.astype(int)).max() <= 1
    finally:
        client.close()
        if node.proc.poll() is None:
            node.interrupt()
