"""label_format: autoware_rle over real DDS, decoded by an independent decoder."""
from __future__ import annotations

import struct

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from ros_helpers import (  # noqa: E402
    CAR,
    REPO,
    Client,
    NodeProcess,
    constant_checkpoint,
    image_msg,
    reliable,
    to_array,
)
from sensor_msgs.msg import Image  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def decode_runs(data: bytes):
    """(class id, run length) records, read with struct: independent of the package."""
    return [struct.unpack_from("<Bi", data, offset) for offset in range(0, len(data), 5)]


@pytest.mark.parametrize("label_map,expected", [("''", CAR),  # YAML empty string
                                               ("label_maps/autoware.yaml", 7)])  # VEHICLE
def test_autoware_rle_labels(tmp_path, label_map, expected):
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    node = NodeProcess(tmp_path, "--params-file", str(REPO / "config" / "segment.yaml"),
                       "-p", f"weights:={ckpt}", "-p", "backend:=torch", "-p", "device:=cpu",
                       "-p", "input_size:=[64, 128]", "-p", "label_format:=autoware_rle",
                       "-p", f"label_map:={label_map}")
    client = Client("mfaranet_label_format_test")
    try:
        client.collect(Image, "/mfaranet/labels", reliable(5), "labels")
        pub = client.node.create_publisher(Image, "/image", reliable(1))
        client.wait_for_node(pub, node, 120.0)
        frame = np.full((48, 96, 3), 90, np.uint8)
        pub.publish(image_msg(frame, "rgb8", stamp=(3, 0)))
        client.wait_until(lambda: client.messages("labels"), 60.0, "the labels")
        msg = client.messages("labels")[0]
        assert (msg.encoding, msg.height, msg.width) == ("mono8", 48, 96)
        # The checkpoint predicts "car" everywhere: one run over the whole mask.
        assert decode_runs(bytes(msg.data)) == [(expected, 48 * 96)]
    finally:
        client.close()
        if node.proc.poll() is None:
            node.interrupt()


def test_unknown_label_format_stops_startup_in_one_line(tmp_path):
    node = NodeProcess(tmp_path, "--params-file", str(REPO / "config" / "segment.yaml"),
                       "-p", "label_format:=rle")
    assert node.proc.wait(timeout=120) != 0
    assert "label_format: 'rle' is not one of mono8, autoware_rle" in node.output()
    assert "Traceback" not in node.output()


def test_bad_label_map_stops_startup_in_one_line_naming_file_and_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: 0\nclasses: [{id: 0, name: a}]\nmapping: {roads: a}\n")
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    node = NodeProcess(tmp_path, "--params-file", str(REPO / "config" / "segment.yaml"),
                       "-p", f"weights:={ckpt}", "-p", "backend:=torch", "-p", "device:=cpu",
                       "-p", "input_size:=[64, 128]", "-p", f"label_map:={bad}")
    assert node.proc.wait(timeout=120) != 0
    assert f"label map {bad}: unknown model class 'roads'" in node.output()
    assert "Traceback" not in node.output()


def test_colour_and_overlay_follow_the_label_map(tmp_path):
    """Under a label map the colour mask and the overlay use the map's colours: the
    checkpoint's "car" goes to a class coloured (10, 200, 30) here."""
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    lmap = tmp_path / "map.yaml"
    lmap.write_text("default: 0\nclasses: [{id: 0, name: other, colour: [0, 0, 0]},\n"
                    "          {id: 1, name: thing, colour: [10, 200, 30]}]\n"
                    "mapping: {car: thing}\n")
    node = NodeProcess(tmp_path, "--params-file", str(REPO / "config" / "segment.yaml"),
                       "-p", f"weights:={ckpt}", "-p", "backend:=torch", "-p", "device:=cpu",
                       "-p", "input_size:=[64, 128]", "-p", f"label_map:={lmap}")
    client = Client("mfaranet_label_map_colour_test")
    try:
        for name in ("labels", "color", "overlay"):
            client.collect(Image, f"/mfaranet/{name}", reliable(5), name)
        pub = client.node.create_publisher(Image, "/image", reliable(1))
        client.wait_for_node(pub, node, 120.0)
        frame = np.full((48, 96, 3), 90, np.uint8)
        pub.publish(image_msg(frame, "rgb8", stamp=(4, 0)))
        client.wait_until(lambda: all(client.messages(k) for k in ("labels", "color",
                                                                   "overlay")), 60.0,
                          "labels, colour and overlay")
        assert np.all(to_array(client.messages("labels")[0]) == 1)
        assert np.all(to_array(client.messages("color")[0]) == [10, 200, 30])
        overlay = to_array(client.messages("overlay")[0]).astype(int)
        assert np.abs(overlay - np.array([50, 145, 60])).max() <= 1   # 0.5 * frame + 0.5 * colour
    finally:
        client.close()
        if node.proc.poll() is None:
            node.interrupt()
