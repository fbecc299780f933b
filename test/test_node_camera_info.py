"""``~/camera_info`` and ``label_resolution`` over real DDS, for plain, binned and ROI
cameras.

A camera publishes 96x128 frames on ``/cam/image_raw`` and its calibration on
``/cam/camera_info``; the node's network input is 64x128, so at network resolution the
label image is the camera image's region of the letterbox at scale 2/3: 64x85. The three
cameras send the same 96x128 frames: a plain one (calibrated at 128x96), one binned 2x2
(calibrated at 256x192) and one sending an ROI of a 640x480 sensor (REP 104: the image is
the ROI, offset first, then divided by binning). Every camera_info that comes out must
describe the label image it goes with, as image_geometry reads it: the same header, its
size, K and P (checked against numbers computed by hand, and by projecting a point).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from ros_helpers import (  # noqa: E402
    CAR,
    REPO,
    Client,
    NodeProcess,
    constant_checkpoint,
    image_msg,
    kv,
    reliable,
    to_array,
)
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from test_lifecycle_node import STARTUP_S, Lifecycle, start_managed  # noqa: E402

pytestmark = [pytest.mark.ros]

K = [200.0, 0.0, 64.0, 0.0, 210.0, 48.0, 0.0, 0.0, 1.0]
P = [200.0, 0.0, 64.0, -20.0, 0.0, 210.0, 48.0, 0.0, 0.0, 0.0, 1.0, 0.0]
#: label image size by label_resolution, for 96x128 frames into a 64x128 network input
LABEL_HW = {"camera": (96, 128), "network": (64, 85)}


def calibration(height=96, width=128, kind="plain"):
    """The camera's camera_info: ``plain`` (K, P as they are), ``binned`` (a 2x2-binned
    sensor calibrated at twice the size) or ``roi`` (a 96x128 ROI at (100, 50) of a
    sensor calibrated at 640x480); all three describe 96x128 images with the same
    effective intrinsics K, P."""
    k, p = np.array(K).reshape(3, 3), np.array(P).reshape(3, 4)
    info = CameraInfo(height=height, width=width, distortion_model="plumb_bob",
                      d=[0.1, -0.05, 0.0, 0.0, 0.0])
    if kind == "binned":
        k, p = k * [[2], [2], [1]], p * [[2], [2], [1]]
        info.height, info.width, info.binning_x, info.binning_y = 2 * height, 2 * width, 2, 2
    elif kind == "roi":
        k, p = k + [[0, 0, 100], [0, 0, 50], [0, 0, 0]], p + [[0, 0, 100, 0], [0, 0, 50, 0],
                                                               [0, 0, 0, 0]]
        info.height, info.width = 480, 640
        info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = \
            100, 50, width, height
    info.k, info.p = k.ravel().tolist(), p.ravel().tolist()
    info.header.frame_id = "cam_optical"
    return info


def image_geometry_k(info):
    """K as image_geometry's PinholeCameraModel adjusts it for the image on the wire
    (vision_opencv, image_geometry/cameramodels.py: binning at least 1; an all-zero ROI is
    the full size; fx / binning_x, (cx - roi.x_offset) / binning_x, likewise for y)."""
    k = np.array(info.k, dtype=float).reshape(3, 3)
    bx, by = max(1, info.binning_x), max(1, info.binning_y)
    roi = info.roi
    x0, y0 = roi.x_offset, roi.y_offset   # zero for an all-zero ROI
    k[0, 0] /= bx
    k[1, 1] /= by
    k[0, 2] = (k[0, 2] - x0) / bx
    k[1, 2] = (k[1, 2] - y0) / by
    return k


def project(info, point):
    k = image_geometry_k(info)
    u, v, w = k @ np.asarray(point, dtype=float)
    return u / w, v / w


def _node(tmp_path, resolution):
    weights = constant_checkpoint(tmp_path / "car.pth")
    return NodeProcess(tmp_path, "--params-file", str(REPO / "config" / "segment.yaml"),
                       "-p", "backend:=torch", "-p", f"weights:={weights}", "-p",
                       "input_size:=[64, 128]", "-p", "device:=cpu", "-p",
                       f"label_resolution:={resolution}", "-r", "image:=/cam/image_raw")


@pytest.fixture
def client():
    c = Client("mfaranet_camera_info_test")
    c.collect(Image, "/mfaranet/labels", reliable(20), "labels")
    c.collect(Image, "/mfaranet/overlay", reliable(20), "overlay")
    c.collect(CameraInfo, "/mfaranet/camera_info", reliable(20), "info")
    c.collect(DiagnosticArray, "/diagnostics", reliable(20), "diag")
    c.image = c.node.create_publisher(Image, "/cam/image_raw", reliable(1))
    c.calib = c.node.create_publisher(CameraInfo, "/cam/camera_info", reliable(1))
    yield c
    c.close()


def _send(client, node, sec, info=None):
    client.wait_for_node(client.image, node)
    client.wait_until(lambda: client.calib.get_subscription_count() > 0, 20.0,
                      "the node to subscribe to camera_info")
    stamp = (sec, 5)
    if info is not None:
        info.header.stamp.sec, info.header.stamp.nanosec = stamp
        client.calib.publish(info)
    frame = image_msg(np.full((96, 128, 3), 120, np.uint8), "rgb8", stamp=stamp,
                      frame_id="cam_optical")
    client.image.publish(frame)
    return stamp


def _stamped(client, key, stamp):
    return [m for m in client.messages(key)
            if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp]


@pytest.mark.parametrize("kind", ["plain", "binned", "roi"])
@pytest.mark.parametrize("resolution", ["camera", "network"])
def test_camera_info_describes_each_label_image(tmp_path, client, resolution, kind):
    node = _node(tmp_path, resolution)
    try:
        h, w = LABEL_HW[resolution]
        sent = calibration(kind=kind)
        for sec in range(1, 4):
            stamp = _send(client, node, sec, calibration(kind=kind))
            client.wait_until(lambda s=stamp: _stamped(client, "info", s)
                              and _stamped(client, "labels", s), 30.0,
                              f"labels and camera_info for {stamp}")
            labels = _stamped(client, "labels", stamp)[-1]
            info = _stamped(client, "info", stamp)[-1]
            assert (labels.height, labels.width) == (h, w)
            assert np.all(to_array(labels) == CAR)
            assert info.header.frame_id == labels.header.frame_id == "cam_optical"
            client.wait_until(lambda s=stamp: _stamped(client, "overlay", s), 10.0, "overlay")
            overlay = _stamped(client, "overlay", stamp)[-1]
            assert (overlay.height, overlay.width) == (h, w)
        assert list(info.d) == [0.1, -0.05, 0.0, 0.0, 0.0]
        roi = (info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height)
        if resolution == "camera":
            # exactly what the camera said of its image: calibration size, binning, ROI
            assert (info.height, info.width, info.binning_x, info.binning_y) == \
                (sent.height, sent.width, sent.binning_x, sent.binning_y)
            assert roi == (sent.roi.x_offset, sent.roi.y_offset, sent.roi.width,
                           sent.roi.height)
            assert list(info.k) == list(sent.k) and list(info.p) == list(sent.p)
        else:
            # ROI and binning folded into K and P: by hand, the same for all three cameras
            sx, sy = w / 128, h / 96     # 85/128 and 64/96
            want_k = [200 * sx, 0, 64 * sx, 0, 210 * sy, 48 * sy, 0, 0, 1]
            want_p = [200 * sx, 0, 64 * sx, -20 * sx, 0, 210 * sy, 48 * sy, 0, 0, 0, 1, 0]
            np.testing.assert_allclose(info.k, want_k, rtol=1e-12)
            np.testing.assert_allclose(info.p, want_p, rtol=1e-12)
            assert (info.height, info.width) == (h, w)
            assert (info.binning_x, info.binning_y, roi) == (0, 0, (0, 0, 0, 0))
        # image_geometry lands on the same pixel of the label image as of the camera image
        for point in ([0.1, -0.2, 2.0], [-0.3, 0.25, 5.0]):
            u, v = project(sent, point)
            lu, lv = project(info, point)
            np.testing.assert_allclose((lu, lv), (u * w / 128, v * h / 96), rtol=1e-12)
    finally:
        node.interrupt()


def test_camera_info_of_another_size_is_counted_and_the_frame_still_segmented(
        tmp_path, client):
    node = _node(tmp_path, "camera")
    try:
        stamp = _send(client, node, 7, calibration(480, 640))
        client.wait_until(lambda: _stamped(client, "labels", stamp), 30.0, "labels")
        client.wait_until(lambda: any(
            int(kv(s).get("camera_info_mismatched", "0")) >= 1
            for m in client.messages("diag") for s in m.status), 10.0,
            "the mismatch count in /diagnostics")
        assert not _stamped(client, "info", stamp)
        assert node.wait_for_log("camera_info is 640x480 but the image is 128x96", 5.0)
        # no camera_info at all: labels as before, no camera_info
        stamp = _send(client, node, 8)
        client.wait_until(lambda: _stamped(client, "labels", stamp), 30.0, "labels")
    finally:
        node.interrupt()


def test_managed_node_refuses_a_bad_label_resolution_and_publishes_camera_info(tmp_path):
    weights = constant_checkpoint(tmp_path / "car.pth")
    node = start_managed(tmp_path, "-p", f"weights:={weights}", "-p", "input_size:=[64, 128]",
                         "-p", "device:=cpu", "-r", "image:=/cam/image_raw")
    client = Client("mfaranet_camera_info_managed")
    try:
        client.collect(CameraInfo, "/mfaranet/camera_info", reliable(20), "info")
        client.image = client.node.create_publisher(Image, "/cam/image_raw", reliable(1))
        client.calib = client.node.create_publisher(CameraInfo, "/cam/camera_info",
                                                    reliable(1))
        lc = Lifecycle(client, node)
        lc.call(GetState, "get_state", GetState.Request(), STARTUP_S)
        refused = lc.set("label_resolution", "half")
        assert not refused.successful and "not one of camera, network" in refused.reason
        assert lc.set("label_resolution", "network").successful
        assert lc.change("configure", STARTUP_S) and lc.change("activate")
        stamp = _send(client, node, 3, calibration())
        client.wait_until(lambda: _stamped(client, "info", stamp), 30.0, "camera_info")
        info = _stamped(client, "info", stamp)[-1]
        assert (info.height, info.width) == LABEL_HW["network"]
        assert lc.change("shutdown")
        assert node.proc.wait(30) == 0, node.output()
    finally:
        client.close()
        if node.proc.poll() is None:
            node.interrupt()
