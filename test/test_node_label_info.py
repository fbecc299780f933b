"""~/label_info over real DDS: the built vision_msgs/LabelInfo reaches a late subscriber."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")
pytest.importorskip("vision_msgs.msg", reason="needs vision_msgs (scripts/build_vision_msgs.sh)")

from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from ros_helpers import REPO, Client, NodeProcess, constant_checkpoint  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402

from mfaranet_ros.model.metadata import CITYSCAPES_CLASSES  # noqa: E402
from mfaranet_ros.ros.label_outputs import LABEL_INFO_QOS  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


EXPECTED = [(i, n) for i, n in enumerate(CITYSCAPES_CLASSES)] + [(255, "unlabeled")]


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
        assert pairs == EXPECTED
        assert "running without ~/label_info" not in node.output()
    finally:
        if client is not None:
            client.close()
        if node.proc.poll() is None:
            node.interrupt()


def change_state(client, node, label):
    cli = client.node.create_client(ChangeState, "/mfaranet/change_state")
    assert cli.wait_for_service(timeout_sec=60.0), node.output()
    future = cli.call_async(ChangeState.Request(transition=Transition(label=label)))
    client.wait_until(future.done, 120.0, label)
    return future.result().success


def test_managed_node_publishes_label_info_on_activate(tmp_path):
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    node = NodeProcess(tmp_path, "--params-file", str(REPO / "config" / "segment.yaml"),
                       "-p", f"weights:={ckpt}", "-p", "backend:=torch", "-p", "device:=cpu",
                       "-p", "input_size:=[64, 128]", executable="segmentation_lifecycle_node")
    client = Client("mfaranet_label_info_test")
    try:
        assert change_state(client, node, "configure")
        assert change_state(client, node, "activate")
        late = Client("mfaranet_label_info_late")  # subscribes after activation
        try:
            late.collect(LabelInfo, "/mfaranet/label_info", LABEL_INFO_QOS, "info")
            late.wait_until(lambda: late.messages("info"), 30.0, "the latched LabelInfo")
            info = late.messages("info")[0]
            assert [(c.class_id, c.class_name) for c in info.class_map] == EXPECTED
        finally:
            late.close()
    finally:
        client.close()
        if node.proc.poll() is None:
            node.interrupt()
