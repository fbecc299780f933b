"""A 30 Hz camera into a slow model: frames are dropped (newest wins), never queued, so the
latency stays bounded; the drops are counted and reported as a warning; SIGINT while the
model is busy still ends the node cleanly."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_helpers import (  # noqa: E402
    Client,
    NodeProcess,
    constant_checkpoint,
    gated_node_command,
    image_msg,
    kv,
    reliable,
)
from sensor_msgs.msg import Image  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

RATE_HZ = 30.0
#: seconds every model call takes, on purpose (gated_segmenter_node): far below 30 Hz on
#: any machine, a GPU's included
MODEL_S = 0.15


@pytest.fixture(scope="module")
def slow_node(tmp_path_factory):
    """The real node and model, every call of the model made to take MODEL_S."""
    tmp = tmp_path_factory.mktemp("slow")
    ckpt = constant_checkpoint(tmp / "car.pth")
    (tmp / "arm").write_text(str(MODEL_S))
    proc = NodeProcess(tmp, "-p", f"weights:={ckpt}", "-p", "backend:=torch",
                       "-p", "device:=cpu", "-p", "input_size:=[64, 128]",
                       command=gated_node_command(tmp / "arm", tmp / "gate", tmp / "entered",
                                                  "segmentation_node"))
    proc.entered = tmp / "entered"
    yield proc
    if proc.proc.poll() is None:
        proc.interrupt()


@pytest.fixture(scope="module")
def client(slow_node):
    c = Client("mfaranet_realtime_test")
    c.collect(DiagnosticArray, "/diagnostics", reliable(20), "diag")
    c.collect(DiagnosticArray, "/mfaranet/latency", reliable(200), "latency")
    c.collect(Image, "/mfaranet/overlay", reliable(5), "overlay")
    c.pub = c.node.create_publisher(Image, "/image", reliable(1))
    try:
        c.wait_for_node(c.pub, slow_node)
        yield c
    finally:
        c.close()


def test_30hz_into_a_slow_model_drops_frames_and_bounds_latency(client):
    frame = np.full((240, 320, 3), 70, np.uint8)
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 4.0:
        client.pub.publish(image_msg(frame, "rgb8", stamp=(sent, 0)))
        sent += 1
        time.sleep(max(0.0, t0 + sent / RATE_HZ - time.monotonic()))

    def settled():
        # the camera has stopped: every frame received is processed or dropped, and every
        # processed frame's latency report has arrived (the two topics are separate)
        if not client.messages("diag"):
            return False
        v = kv(client.messages("diag")[-1].status[0])
        received, processed = int(v["frames_received"]), int(v["frames_processed"])
        return (received > 0 and received == processed + int(v["frames_dropped"])
                and len(client.messages("latency")) == processed)

    client.wait_until(lambda: client.messages("diag") and any(
        m.status[0].level == b"\x01" and "falling behind" in m.status[0].message
        for m in client.messages("diag")), 6.0, "a 'falling behind' warning")
    client.wait_until(settled, 10.0, "the counters to settle")
    values = kv(client.messages("diag")[-1].status[0])
    received, processed = int(values["frames_received"]), int(values["frames_processed"])
    dropped = int(values["frames_dropped"])
    assert received >= sent // 3, (sent, values)
    assert processed >= 2 and dropped >= processed, values

    lat = [kv(m.status[0]) for m in client.messages("latency")]
    assert len(lat) == processed
    work = [float(v["end_to_end_ms"]) - float(v["queue_ms"]) for v in lat]
    e2e = [float(v["end_to_end_ms"]) for v in lat]
    assert min(work) > 1000.0 / RATE_HZ  # the model really is slower than the camera
    # bounded: a frame waits at most for the one being processed, it never queues
    for total, own in zip(e2e, work):
        assert total <= own + max(work) + 100.0, (total, own, max(work))
    # the newest frame wins: outputs come out in stamp order, with gaps
    stamps = [m.header.stamp.sec for m in client.messages("latency")]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] + 1 > len(stamps)


def test_sigint_while_busy_exits_cleanly(slow_node, client):
    frame = np.full((240, 320, 3), 70, np.uint8)
    slow_node.entered.unlink(missing_ok=True)
    for i in range(5):
        client.pub.publish(image_msg(frame, "rgb8", stamp=(10_000 + i, 0)))
        time.sleep(0.03)
    client.wait_until(slow_node.entered.exists, 10.0, "the worker to be inside the model")
    assert slow_node.interrupt() == 0, slow_node.output()
    assert "Traceback" not in slow_node.output()
