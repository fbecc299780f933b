"""~/confidence over real DDS, on every CPU backend: mono8 round(p * 255) of the top class,
the labels' header; and where the model has no confidence variant (an ONNX Runtime int8
artifact built without it), a confidence subscriber costs no frame: labels for every frame,
/diagnostics WARN with the reason and the fix, ~/confidence not advertised."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
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
from sensor_msgs.msg import Image  # noqa: E402

from mfaranet_ros.inference.segmenter import Segmenter  # noqa: E402
from mfaranet_ros.label_formats import confidence_to_mono8  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NETWORK = (64, 128)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One checkpoint and one artifact cache for the backends."""
    root = tmp_path_factory.mktemp("confidence")
    return constant_checkpoint(root / "car.pth"), root / "cache"


def _node(tmp_path, ckpt, backend, precision="fp32", cache=None):
    args = ["--params-file", str(REPO / "config" / "segment.yaml"), "-p", f"weights:={ckpt}",
            "-p", f"backend:={backend}", "-p", f"precision:={precision}", "-p", "device:=cpu",
            "-p", f"input_size:=[{NETWORK[0]}, {NETWORK[1]}]"]
    if cache is not None:
        args += ["-p", f"engine_cache_dir:={cache}"]
    return NodeProcess(tmp_path, *args)


@pytest.mark.parametrize("backend", [
    "torch", "onnxruntime",
    pytest.param("openvino", marks=pytest.mark.skipif(
        importlib.util.find_spec("openvino") is None, reason="needs openvino"))])
def test_confidence_matches_the_segmenters_and_the_labels_header(tmp_path, shared, backend):
    ckpt, cache = shared   # OpenVINO compiles the ONNX export ONNX Runtime made before it
    node = _node(tmp_path, ckpt, backend, cache=cache)
    client = Client(f"mfaranet_confidence_{backend}")
    try:
        client.collect(Image, "/mfaranet/confidence", reliable(5), "confidence")
        client.collect(Image, "/mfaranet/labels", reliable(5), "labels")
        pub = client.node.create_publisher(Image, "/image", reliable(1))
        client.wait_for_node(pub, node, 300.0)
        # the confidence variant was prepared at configure: said in the start-up line
        assert node.wait_for_log("confidence ready", 5.0), node.output()
        rng = np.random.default_rng(1)
        frame = rng.integers(0, 256, size=(48, 96, 3), dtype=np.uint8)
        pub.publish(image_msg(frame, "rgb8", stamp=(7, 5)))
        client.wait_until(lambda: client.messages("confidence") and client.messages("labels"),
                          60.0, "confidence and labels")
        conf, labels = client.messages("confidence")[0], client.messages("labels")[0]
        assert conf.encoding == "mono8" and conf.header == labels.header
        assert (conf.height, conf.width) == (labels.height, labels.width) == (48, 96)
        # The same frame through the same weights and backend in this process.
        seg = Segmenter.from_checkpoint(ckpt, backend=backend, device="cpu",
                                        input_size=NETWORK, cache_dir=cache)
        expected = confidence_to_mono8(seg.segment(frame, confidence=True).confidence)
        assert np.abs(to_array(conf).astype(int) - expected.astype(int)).max() <= 1
        # nothing was built after the warm-up: no frame waited for an export
        assert "prepared the backend" not in node.output()
    finally:
        client.close()
        if node.proc.poll() is None:
            node.interrupt()


def test_an_int8_model_without_confidence_costs_no_frame(tmp_path):
    """An ONNX Runtime int8 artifact calibrated without --confidence; a client subscribes to
    ~/confidence (as Nav2's layer or `ros2 topic echo` do) and streams frames: every frame
    gets its labels, /diagnostics says WARN (never ERROR) with the reason and the fix, and
    ~/confidence is not advertised."""
    from mfaranet_ros.evaluation.build_engine import calibration_spec
    from mfaranet_ros.inference.backends import create_backend
    from mfaranet_ros.inference.cache import resolve_cache_dir
    from mfaranet_ros.inference.onnx_artifacts import ModelSource

    ckpt = constant_checkpoint(tmp_path / "car.pth")
    cache = tmp_path / "cache"
    create_backend("onnxruntime", ModelSource(ckpt), precision="int8",
                   cache=resolve_cache_dir(cache),
                   calibration=calibration_spec("synthetic", frames=2, held_out=2)
                   ).prepare(1, *NETWORK)               # labels only, as build-engine does
    node = _node(tmp_path, ckpt, "onnxruntime", precision="int8", cache=cache)
    client = Client("mfaranet_confidence_int8")
    try:
        client.collect(Image, "/mfaranet/confidence", reliable(5), "confidence")
        client.collect(Image, "/mfaranet/labels", reliable(10), "labels")
        client.collect(DiagnosticArray, "/diagnostics", reliable(20), "diag")
        pub = client.node.create_publisher(Image, "/image", reliable(1))
        client.wait_for_node(pub, node, 300.0)
        assert node.wait_for_log("~/confidence is off for 64x128 frames", 5.0), node.output()
        assert "--confidence" in node.output()
        assert client.node.count_publishers("/mfaranet/confidence") == 0
        assert client.node.count_publishers("/mfaranet/labels") == 1
        frame = np.full((48, 96, 3), 90, np.uint8)
        for sec in range(1, 6):    # one at a time: every frame must come out
            pub.publish(image_msg(frame, "rgb8", stamp=(sec, 0)))
            client.wait_until(lambda s=sec: any(m.header.stamp.sec == s
                                                for m in client.messages("labels")),
                              30.0, f"labels of frame {sec}")
        assert all(np.all(to_array(m) == CAR) for m in client.messages("labels"))
        assert not client.messages("confidence")

        def warned():
            statuses = [s for m in client.messages("diag") for s in m.status
                        if s.name == "mfaranet: segmentation"]
            return statuses and kv(statuses[-1]).get("frames_processed") == "5"
        client.wait_until(warned, 10.0, "a /diagnostics status after the 5 frames")
        status = [s for m in client.messages("diag") for s in m.status
                  if s.name == "mfaranet: segmentation"][-1]
        assert status.level == b"\x01", (status.level, status.message)   # WARN
        assert "confidence is off" in status.message
        assert kv(status)["confidence"].startswith("off: ")
        assert kv(status)["inference_failures"] == "0"
    finally:
        client.close()
        if node.proc.poll() is None:
            node.interrupt()


def test_precision_auto_is_said_and_shown_in_diagnostics(tmp_path):
    """precision: auto measures its candidates at start-up: the node logs the choice and
    the agreement it measured, and /diagnostics carries them as precision_choice."""
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    node = _node(tmp_path, ckpt, "torch", precision="auto")
    client = Client("mfaranet_precision_auto")
    try:
        client.collect(DiagnosticArray, "/diagnostics", reliable(20), "diag")
        assert node.wait_for_log("precision auto chose", 300.0), node.output()

        def choice():
            return [kv(s).get("precision_choice", "") for m in client.messages("diag")
                    for s in m.status if s.name == "mfaranet: segmentation"]
        client.wait_until(lambda: any(choice()), 30.0, "precision_choice in /diagnostics")
        shown = [c for c in choice() if c][-1]
        assert shown.startswith("auto chose ") and "CPU units" in shown
        assert shown in node.output()
    finally:
        client.close()
        if node.proc.poll() is None:
            node.interrupt()
