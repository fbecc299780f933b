"""The managed node while a batch is held in flight, over real DDS: every lifecycle and
parameter service answers within 1 s, /diagnostics keeps publishing, ``deactivate``
returns at once and the held batch's frame is counted as dropped, not published.

The node runs in its own process (``gated_segmenter_node.py``): the real node with the
real Segmenter, which a file holds inside ``segment`` once armed (after configure's
warm-up). The batch is held for as long as the test needs, so nothing depends on how
fast this machine runs the model.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from rcl_interfaces.srv import GetParameters, ListParameters  # noqa: E402
from ros_helpers import (  # noqa: E402
    REPO,
    Client,
    NodeProcess,
    constant_checkpoint,
    gated_node_command,
    image_msg,
    kv,
    reliable,
)
from sensor_msgs.msg import Image  # noqa: E402
from test_lifecycle_node import STARTUP_S, Lifecycle  # noqa: E402

pytestmark = [pytest.mark.ros]

ANSWER_S = 1.0


def _segmentation_status(client):
    for msg in reversed(client.messages("diag")):
        for status in msg.status:
            if status.name == "mfaranet: segmentation":
                return status
    return None


def test_services_answer_and_deactivate_returns_while_a_batch_is_held(tmp_path):
    weights = constant_checkpoint(tmp_path / "car.pth")
    arm, gate, entered = (tmp_path / n for n in ("arm", "gate", "entered"))
    node = NodeProcess(
        tmp_path, "--params-file", str(REPO / "config" / "segment.yaml"), "-p",
        "backend:=torch", "-p", f"weights:={weights}", "-p", "input_size:=[64, 128]", "-p",
        "device:=cpu",
        command=gated_node_command(arm, gate, entered, "segmentation_lifecycle_node"))
    client = Client("mfaranet_busy_test")
    try:
        client.collect(DiagnosticArray, "/diagnostics", reliable(50), "diag")
        client.collect(Image, "/mfaranet/labels", reliable(5), "labels")
        pub = client.node.create_publisher(Image, "/image", reliable(1))
        lc = Lifecycle(client, node)
        lc.call(GetState, "get_state", GetState.Request(), STARTUP_S)
        assert lc.change("configure", STARTUP_S), node.output()
        arm.touch()
        assert lc.change("activate"), node.output()
        client.wait_until(lambda: pub.get_subscription_count() > 0, 10.0, "a subscription")
        pub.publish(image_msg(np.full((48, 64, 3), 200, np.uint8), "rgb8", stamp=(7, 0)))
        client.wait_until(entered.exists, 30.0, "the batch to start")

        def timed(call):
            t0 = time.monotonic()
            result = call()
            return result, time.monotonic() - t0

        took = {}
        state, took["get_state"] = timed(lc.state)
        assert state == "active"
        _, took["get_available_transitions"] = timed(lc.transitions)
        names, took["list_parameters"] = timed(lambda: lc.call(
            ListParameters, "list_parameters", ListParameters.Request()).result.names)
        assert "weights" in names
        values, took["get_parameters"] = timed(lambda: lc.call(
            GetParameters, "get_parameters", GetParameters.Request(names=["backend"])).values)
        assert values[0].string_value == "torch"
        result, took["set_parameters"] = timed(lambda: lc.set("overlay_alpha", 0.3))
        assert result.successful
        # /diagnostics keeps its 1 Hz while the batch is held
        client.clear("diag")
        client.wait_until(lambda: len([m for m in client.messages("diag")
                                       if any(s.name == "mfaranet: segmentation"
                                              for s in m.status)]) >= 2, 5.0,
                          "two /diagnostics messages while the batch is held")
        ok, took["deactivate"] = timed(lambda: lc.change("deactivate"))
        assert ok and lc.state() == "inactive"
        slow = {k: round(v, 3) for k, v in took.items() if v >= ANSWER_S}
        assert not slow, f"answered in {ANSWER_S} s or more while a batch was held: {slow}"

        gate.touch()     # the held batch finishes; it was deactivated: dropped, not published
        client.wait_until(lambda: (s := _segmentation_status(client)) is not None
                          and kv(s).get("frames_dropped") == "1"
                          and kv(s).get("lifecycle_state") == "inactive", 10.0,
                          "the held frame to be counted as dropped")
        status = kv(_segmentation_status(client))
        assert status["frames_received"] == "1" and status["frames_processed"] == "0"
        assert not [m for m in client.messages("labels")
                    if (m.header.stamp.sec, m.header.stamp.nanosec) == (7, 0)]
        assert lc.change("cleanup") and lc.change("shutdown")
        assert node.proc.wait(30) == 0, node.output()
    finally:
        client.close()
        if node.proc.poll() is None:
            node.interrupt()
