"""~/label_info over real DDS: the built vision_msgs/LabelInfo reaches a late subscriber."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")
pytest.importorskip("vision_msgs.msg", reason="needs vision_msgs (scripts/build_vision_msgs.sh)")

from ros_helpers import REPO, Client, NodeProcess, constant_checkpoint  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402

from mfaranet_ros.model.metadata import CITYSCAPES_CLASSES  # noqa: E402
from mfaranet_ros.ros.label_outputs import LABEL_INFO_QOS  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_label_info_reaches_a_subscriber_started_after_the_node(tmp_path):
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    node = NodeProcess(tmp_path, "--params-file", str(REPO / "config" / "segment.yaml"),
                       "-p", f"weights:={ckpt}", "-p", "backend:=torch", "-p", "device:=cpu",
                       "-p", "input_size:=[64, 128]")
    client = None
    try:
        # The outputs are up (and ~/label_info published) before the subscriber exists.
        assert node.wait_for_log("subscribed to", 120.0), node.output()
        client = Client()
        client.collect(LabelInfo, "/mfaranet/label_info", LABEL_INFO_QOS, "info")
        client.wait_until(lambda: client.messages("info"), 30.0, "the latched LabelInfo")
        info = client.messages("info")[0]
        pairs = [(c.class_id, c.class_name) for c in info.class_map]
        assert pairs == [(i, n) for i, n in enumerate(CITYSCAPES_CLASSES)] + [(255, "unlabeled")]
        assert "running without ~/label_info" not in node.output()
    finally:
        if client is not None:
            client.close()
        if node.proc.poll() is None:
            node.interrupt()
