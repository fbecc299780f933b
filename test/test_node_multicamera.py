"""Several cameras through one node and one model: own outputs (under ~/<camera>/) and
stamps per camera, every output subscribed at once (confidence, label_info, camera_info
too), each camera's camera_info, batched cycles, a stalled camera does not block the
others, per-camera counters, and QoS events in /diagnostics. The node publishes on its
publishing thread (``publish_overlap: always``), as a bringup on a GPU does; the other
node tests run it inline (``auto`` on the CPU)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import (  # noqa: E402
    CAR,
    Client,
    NodeProcess,
    constant_checkpoint,
    image_msg,
    kv,
    reliable,
    to_array,
)
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

K = [100.0, 0.0, 50.0, 0.0, 100.0, 40.0, 0.0, 0.0, 1.0]
P = [100.0, 0.0, 50.0, 0.0, 0.0, 100.0, 40.0, 0.0, 0.0, 0.0, 1.0, 0.0]

# name -> (height, width, rate Hz, stamp base)
CAMERAS = {"front": (120, 160, 8.0, 100_000), "left": (240, 320, 4.0, 200_000),
           "rear": (90, 200, 2.0, 300_000)}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multicam")
    ckpt = constant_checkpoint(tmp / "car.pth")
    proc = NodeProcess(tmp, "-p", f"weights:={ckpt}", "-p", "backend:=torch",
                       "-p", "input_size:=[64, 128]",
                       "-p", f"cameras:=[{', '.join(CAMERAS)}]",
                       "-p", "publish_overlap:=always")
    yield proc
    if proc.proc.poll() is None:
        proc.interrupt()


@pytest.fixture(scope="module")
def client(node):
    c = Client("mfaranet_multicam_test")
    c.collect(DiagnosticArray, "/diagnostics", reliable(20), "diag")
    c.pubs, c.infos = {}, {}
    for cam in CAMERAS:
        c.collect(Image, f"/mfaranet/{cam}/overlay", reliable(20), f"{cam}/overlay")
        c.collect(Image, f"/mfaranet/{cam}/labels", reliable(20), f"{cam}/labels")
        c.collect(Image, f"/mfaranet/{cam}/color", reliable(20), f"{cam}/color")
        c.collect(Image, f"/mfaranet/{cam}/confidence", reliable(20), f"{cam}/confidence")
        c.collect(CameraInfo, f"/mfaranet/{cam}/camera_info", reliable(20), f"{cam}/info")
        c.collect(DiagnosticArray, f"/mfaranet/{cam}/latency", reliable(50), f"{cam}/latency")
        c.pubs[cam] = c.node.create_publisher(Image, f"/{cam}/image", reliable(1))
        c.infos[cam] = c.node.create_publisher(CameraInfo, f"/{cam}/camera_info", reliable(1))
    try:
        c.wait_until(lambda: all(p.get_subscription_count() for p in c.pubs.values())
                     or node.proc.poll() is not None, 60.0, "the node to subscribe")
        assert node.proc.poll() is None, node.output()
        yield c
    finally:
        c.close()


def stream(client, cameras, seconds):
    """Publish each camera at its own rate from its own thread; the stamps sent."""
    sent = {c: [] for c in cameras}

    def run(cam):
        h, w, rate, base = CAMERAS[cam]
        frame = np.full((h, w, 3), 60, np.uint8)
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            stamp = base + len(sent[cam])
            client.infos[cam].publish(CameraInfo(height=h, width=w, k=K, p=P))
            client.pubs[cam].publish(image_msg(frame, "rgb8", stamp=(stamp, 0),
                                               frame_id=f"{cam}_optical"))
            sent[cam].append(stamp)
            i += 1
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))

    threads = [threading.Thread(target=run, args=(c,)) for c in cameras]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent


def camera_status(client, cam):
    for status in client.messages("diag")[-1].status:
        if status.name == f"mfaranet: camera {cam}":
            return status
    raise AssertionError(f"no status for camera {cam}")


def test_each_camera_gets_its_own_outputs_and_stamps(client):
    sent = stream(client, CAMERAS, 3.0)
    time.sleep(1.0)
    for cam, (h, w, _, _base) in CAMERAS.items():
        overlays = client.messages(f"{cam}/overlay")
        assert len(overlays) >= 2, cam
        for m in overlays:
            assert (m.height, m.width, m.header.frame_id) == (h, w, f"{cam}_optical")
            assert m.header.stamp.sec in sent[cam]
        labels = client.messages(f"{cam}/labels")
        assert np.all(to_array(labels[-1]) == CAR)
        assert {m.header.stamp.sec for m in labels} <= set(sent[cam])
    batches = [int(kv(m.status[0])["batch_size"]) for cam in CAMERAS
               for m in client.messages(f"{cam}/latency")]
    assert max(batches) >= 2, "cameras with frames pending run as one batch"
    for cam, (h, w, _, _base) in CAMERAS.items():
        # every output subscribed at once: confidence and camera_info too, per camera
        confidence, infos = client.messages(f"{cam}/confidence"), client.messages(f"{cam}/info")
        assert confidence and infos, cam
        assert all((m.height, m.width) == (h, w) for m in confidence)
        assert {m.header.stamp.sec for m in infos} <= set(sent[cam])
        assert all((i.height, i.width, list(i.k)) == (h, w, K) for i in infos)
        assert all(i.header.frame_id == f"{cam}_optical" for i in infos)


def test_per_camera_counters_in_diagnostics(client):
    client.wait_until(lambda: client.messages("diag") and len(
        client.messages("diag")[-1].status) == 1 + len(CAMERAS), 5.0, "per-camera statuses")
    for cam in CAMERAS:
        v = kv(camera_status(client, cam))
        received, processed = int(v["frames_received"]), int(v["frames_processed"])
        assert received > 0 and processed > 0, (cam, v)
        assert abs(received - processed - int(v["frames_dropped"])) <= 1, (cam, v)
        assert v["topic"] == f"/{cam}/image" and v["reliability"] == "reliable"
        for key in ("input_rate_hz", "output_rate_hz", "frames_rejected",
                    "end_to_end_p50_ms", "end_to_end_p95_ms", "end_to_end_max_ms"):
            assert key in v
    assert kv(client.messages("diag")[-1].status[0])["publish_overlap"] == "always"
    # a bad frame on one camera is counted on that camera only
    before = {c: int(kv(camera_status(client, c))["frames_rejected"]) for c in CAMERAS}
    bad = image_msg(np.zeros((10, 10, 3), np.uint8), "rgb8", stamp=(1, 0))
    bad.encoding = "32FC7"
    client.pubs["left"].publish(bad)
    client.wait_until(lambda: int(kv(camera_status(client, "left"))["frames_rejected"])
                      > before["left"], 6.0, "left's reject counter")
    assert "unsupported encoding '32FC7'" in kv(camera_status(client, "left"))[
        "last_reject_reason"]
    for cam in ("front", "rear"):
        assert int(kv(camera_status(client, cam))["frames_rejected"]) == before[cam]


def test_a_stopped_camera_does_not_stall_the_others(client):
    front_before = int(kv(camera_status(client, "front"))["frames_received"])
    client.clear()
    stream(client, ["left", "rear"], 2.5)
    time.sleep(0.8)
    assert len(client.messages("left/overlay")) >= 3
    assert len(client.messages("rear/overlay")) >= 2
    assert not client.messages("front/overlay")
    client.wait_until(lambda: client.messages("diag"), 3.0, "diagnostics")
    v = kv(camera_status(client, "front"))
    assert int(v["frames_received"]) == front_before
    assert float(kv(camera_status(client, "left"))["output_rate_hz"]) > 0.5


def test_qos_incompatible_subscriber_shows_in_diagnostics(node, client):
    """A viewer asking for transient-local durability cannot match the volatile outputs:
    the node says so in /diagnostics (WARN) instead of leaving the viewer wondering."""
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sub = client.node.create_subscription(Image, "/mfaranet/rear/overlay", lambda m: None, qos)
    try:
        client.wait_until(lambda: client.messages("diag") and int(kv(
            client.messages("diag")[-1].status[0])["qos_incompatible_subscribers"]) >= 1,
            8.0, "the incompatible-QoS count")
        status = client.messages("diag")[-1].status[0]
        v = kv(status)
        assert v["qos_last_policy"] == "DURABILITY"
        assert v["qos_last_topic"] == "/mfaranet/rear/overlay"
        assert status.level == b"\x01" and "QoS events" in status.message
        assert node.wait_for_log("QoS event on /mfaranet/rear/overlay", 2.0)
    finally:
        client.node.destroy_subscription(sub)


def test_the_node_reads_each_cameras_camera_info_and_none_of_its_own(node, client):
    """Inputs beside the driver's image, outputs private to the node: the node subscribes
    to each /<camera>/camera_info and never to a topic it publishes."""
    for cam in CAMERAS:
        assert client.node.count_subscribers(f"/{cam}/camera_info") == 1, cam
        assert client.node.count_publishers(f"/mfaranet/{cam}/camera_info") == 1, cam
        assert client.node.count_subscribers(f"/mfaranet/{cam}/camera_info") == 1  # ours
    assert "is both" not in node.output()


def test_sigint_exits_cleanly(node, client):
    assert node.interrupt() == 0, node.output()
    assert "Traceback" not in node.output()
