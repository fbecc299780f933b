"""int8 for ONNX Runtime: calibration sources, the cached artifact, its accuracy, refusals.

The demo weights at a small input (64x128) on generated street scenes: a random-init
network's labels are near ties everywhere, so agreement there would mean nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization", reason="needs onnxruntime")

from mfaranet_ros.evaluation.build_engine import calibration_spec  # noqa: E402
from mfaranet_ros.inference.backends import (  # noqa: E402
    BackendUnavailable,
    ModelSource,
    check_precision,
    create_backend,
)
from mfaranet_ros.inference.backends.onnxruntime_backend import INT8_ARTIFACT  # noqa: E402
from mfaranet_ros.inference.cache import resolve_cache_dir  # noqa: E402
from mfaranet_ros.inference.calibration import (  # noqa: E402
    CalibrationSpec,
    load_calibration,
    scenes,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_WEIGHTS = REPO / "models" / "mfaranet_synthetic.pth"
H, W = 64, 128
SYNTHETIC = calibration_spec("synthetic", frames=4, held_out=4)
FILL = np.array([124, 116, 104], np.uint8)


@pytest.fixture(scope="module")
def source(demo_weights) -> ModelSource:
    return ModelSource(demo_weights)


@pytest.fixture(scope="module")
def int8_cache(source, low_precision_cache) -> Path:
    """A cache holding one int8 model calibrated on 4 generated scenes."""
    cache = low_precision_cache
    backend = create_backend("onnxruntime", source, precision="int8",
                             cache=resolve_cache_dir(cache), calibration=SYNTHETIC)
    backend.prepare(1, H, W)
    return cache


def _props(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path))
    return {p.key: p.value for p in model.metadata_props}, model


def _artifacts(cache: Path):
    return sorted(cache.glob(f"{INT8_ARTIFACT}-*.onnx"))


def test_int8_artifact_embeds_metadata_and_accuracy(int8_cache):
    (path,) = _artifacts(int8_cache)
    props, _ = _props(path)
    key = json.loads(props["mfaranet_ros.cache_key"])
    assert key["precision"] == "int8" and key["input_hw"] == [H, W]
    assert key["calibration"]["frames"] == 4 and len(key["calibration"]["sha256"]) == 64
    assert len(json.loads(props["mfaranet_ros.metadata"])["class_names"]) == 19
    assert "seeds 70000..70003" in props["mfaranet_ros.calibration"]
    accuracy = json.loads(props["mfaranet_ros.accuracy"])
    (held,) = accuracy["held_out"]
    assert "seeds 90000..90003" in held["source"]     # not the calibration frames
    assert accuracy["label_agreement"] >= 0.98
    assert abs(accuracy["miou_delta_points"]) <= 1.5


def test_int8_keeps_labels_and_flow_convolutions_float(int8_cache):
    """Weights of the class-logit (19 out) and flow-offset (2 out) convolutions, and of the
    stem's first one (3 in), stay float; the other convolutions read int8 weights."""
    (path,) = _artifacts(int8_cache)
    _, model = _props(path)
    produced_by = {out: node for node in model.graph.node for out in node.output}
    floats, quantized = [], []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        weight = produced_by.get(node.input[1])
        (quantized if weight is not None and weight.op_type == "DequantizeLinear"
         else floats).append(node)
    inits = {i.name: i for i in model.graph.initializer}
    float_shapes = sorted({tuple(inits[n.input[1]].dims[:2]) for n in floats})
    assert all(o <= 19 or i == 3 for o, i in float_shapes), float_shapes
    assert len(quantized) >= 40 and {op.op_type for op in model.graph.node} >= {"Gather", "ArgMax"}


def test_node_settings_load_the_artifact_and_agree_with_fp32(source, int8_cache):
    cache = resolve_cache_dir(int8_cache)
    int8 = create_backend("onnxruntime", source, precision="int8", cache=cache)
    fp32 = create_backend("onnxruntime", source, precision="fp32", cache=cache)
    frames = scenes(123, 2, (H, W)).frames
    agree = np.mean(int8.run(frames)[0] == fp32.run(frames)[0])
    assert agree >= 0.97, agree
    assert int8.describe().endswith("int8")


def test_another_calibration_set_is_another_artifact(source, int8_cache, tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(scenes(5, 6, (96, 192)).frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    spec = calibration_spec(str(folder), frames=3, held_out=2)
    before = set(_artifacts(int8_cache))
    backend = create_backend("onnxruntime", source, precision="int8",
                             cache=resolve_cache_dir(int8_cache), calibration=spec)
    backend.prepare(1, H, W)
    (new,) = set(_artifacts(int8_cache)) - before
    props, _ = _props(new)
    assert "image folder frames: 3 frames" in props["mfaranet_ros.calibration"]
    sets = json.loads(props["mfaranet_ros.accuracy"])["held_out"]
    assert [s["frames"] for s in sets] == [2, 2] and "miou_delta_points" in sets[1]
    # the same frames again: the cached entry, nothing rebuilt
    again = create_backend("onnxruntime", source, precision="int8",
                           cache=resolve_cache_dir(int8_cache), calibration=spec)
    again.prepare(1, H, W)
    assert set(_artifacts(int8_cache)) == before | {new}


def test_calibration_from_a_bag_needs_its_image_topic(tmp_path):
    from mfaranet_ros.evaluation.synthbag import SyntheticBagSpec, make_synthetic_bag

    bag = tmp_path / "bag"
    make_synthetic_bag(bag, SyntheticBagSpec(frames=4, size=(48, 96), seed=3))
    with pytest.raises(ValueError, match="2 image topics .* --calibration-topic"):
        load_calibration(calibration_spec(str(bag), frames=2, held_out=2), (H, W), FILL)
    calib, (held, generated) = load_calibration(
        calibration_spec(str(bag), "/camera/image_raw", frames=2, held_out=2), (H, W), FILL)
    assert calib.frames.shape == (2, H, W, 3) and held.frames.shape == (2, H, W, 3)
    assert calib.sha256 != held.sha256 and held.labels is None and generated.labels is not None
    assert "topic /camera/image_raw" in calib.source
    with pytest.raises(ValueError, match="gave no bag reader"):    # inference reads no bag
        load_calibration(CalibrationSpec(str(bag), "/camera/image_raw"), (H, W), FILL)


def test_bad_calibration_sources_are_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist; give a bag, a folder of images"):
        load_calibration(CalibrationSpec(str(tmp_path / "nope")), (H, W), FILL)
    (tmp_path / "one.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot be read as an image"):
        load_calibration(CalibrationSpec(str(tmp_path)), (H, W), FILL)
    with pytest.raises(ValueError, match="at least 1 frame"):
        CalibrationSpec("synthetic", frames=0)


def test_int8_without_an_artifact_refuses_saying_how_to_build_it(source, tmp_path):
    with pytest.raises(BackendUnavailable) as err:
        create_backend("onnxruntime", source, precision="int8", cache=resolve_cache_dir(tmp_path))
    text = str(err.value)
    assert "\n" not in text and "none was built" in text
    assert "mfaranet build-engine --weights" in text and "--backend onnxruntime" in text
    assert "--precision int8 --calibration BAG|IMAGE_FOLDER|synthetic" in text


def test_int8_for_another_input_size_refuses(source, int8_cache):
    backend = create_backend("onnxruntime", source, precision="int8",
                             cache=resolve_cache_dir(int8_cache))
    with pytest.raises(BackendUnavailable, match="at 64x192 .* --input-size 64x192"):
        backend.prepare(1, 64, 192)


def test_backend_precision_pairs_are_validated():
    with pytest.raises(BackendUnavailable, match="'torch' runs fp32, fp16, not int8; int8 runs "
                                                 "on onnxruntime, openvino"):
        check_precision("torch", "int8")
    with pytest.raises(BackendUnavailable, match="bf16 runs on openvino"):
        check_precision("onnxruntime", "bf16")
    with pytest.raises(ValueError, match="unknown precision"):
        check_precision("onnxruntime", "int4")
    check_precision("openvino", "bf16")


def test_build_engine_int8_prints_the_artifact(source, int8_cache, capsys):
    from mfaranet_ros.cli import main

    args = ["build-engine", "--weights", str(DEMO_WEIGHTS), "--backend", "onnxruntime",
            "--input-size", f"{H}x{W}", "--precision", "int8", "--calibration", "synthetic",
            "--calibration-frames", "4", "--held-out-frames", "4", "--cache-dir", str(int8_cache)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"cached at {_artifacts(int8_cache)[0]}" in out or INT8_ARTIFACT in out
    assert main(args[:-8] + ["--cache-dir", str(int8_cache)]) == 2
    assert "--precision int8 needs --calibration" in capsys.readouterr().err


@pytest.mark.ros
def test_node_with_int8_and_no_artifact_refuses_to_start(tmp_path):
    import subprocess

    pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")
    from ros_helpers import node_command

    res = subprocess.run(node_command("-p", "backend:=onnxruntime", "-p", "precision:=int8",
                                      "-p", f"engine_cache_dir:={tmp_path}"),
                         capture_output=True, text=True, timeout=120, cwd=str(REPO))
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in out
    assert "no onnxruntime int8 artifact for mfaranet_synthetic.pth" in out
    assert "mfaranet build-engine --weights" in out and "--precision int8 --calibration" in out
