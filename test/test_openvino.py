"""The OpenVINO backend: explicit fp32, bf16 only where the CPU has it, int8 through NNCF,
and the benchmark rows of every backend:precision pair."""
from __future__ import annotations

import json

import numpy as np
import pytest

ov = pytest.importorskip("openvino", reason="needs openvino (requirements-test.txt)")
pytest.importorskip("nncf", reason="needs nncf (requirements-test.txt)")

from mfaranet_ros.evaluation.build_engine import calibration_spec  # noqa: E402
from mfaranet_ros.inference.backends import (  # noqa: E402
    BackendUnavailable,
    ModelSource,
    create_backend,
)
from mfaranet_ros.inference.backends.openvino_backend import OV_INT8_ARTIFACT  # noqa: E402
from mfaranet_ros.inference.cache import resolve_cache_dir  # noqa: E402
from mfaranet_ros.inference.calibration import scenes  # noqa: E402

H, W = 64, 128
HAS_BF16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.fixture(scope="module")
def source(demo_weights) -> ModelSource:
    return ModelSource(demo_weights)


@pytest.fixture(scope="module")
def cache(low_precision_cache):
    return resolve_cache_dir(low_precision_cache)


@pytest.fixture(scope="module")
def frames():
    return scenes(321, 2, (H, W)).frames


def test_fp32_is_requested_explicitly_and_matches_onnxruntime(source, cache, frames):
    backend = create_backend("openvino", source, precision="fp32", cache=cache)
    compiled_time = backend.prepare(2, H, W)
    assert compiled_time > 0 and "inference precision f32" in backend.describe()
    (compiled,) = backend._compiled.values()
    assert "32" in str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    labels, conf = backend.run(frames)
    assert labels.shape == (2, H, W) and labels.dtype == np.uint8 and conf is None
    reference = create_backend("onnxruntime", source, precision="fp32", cache=cache)
    assert np.mean(labels == reference.run(frames)[0]) >= 0.999
    # the same fp32 export ONNX Runtime uses: one cached file, not two
    assert list(backend.artifacts().values()) == list(reference.artifacts().values())


@pytest.mark.skipif(HAS_BF16, reason="this CPU has bf16: the refusal does not apply")
def test_bf16_without_bf16_instructions_is_refused(source, cache):
    with pytest.raises(BackendUnavailable, match="no bf16 instructions .* would run fp32"):
        create_backend("openvino", source, precision="bf16", cache=cache)


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bf16 instructions (AVX512_BF16/AMX)")
def test_bf16_agrees_with_fp32(source, cache, frames):
    bf16 = create_backend("openvino", source, precision="bf16", cache=cache)
    fp32 = create_backend("openvino", source, precision="fp32", cache=cache)
    assert np.mean(bf16.run(frames)[0] == fp32.run(frames)[0]) >= 0.995


def test_int8_refuses_without_an_artifact(source, tmp_path):
    with pytest.raises(BackendUnavailable) as err:
        create_backend("openvino", source, precision="int8", cache=resolve_cache_dir(tmp_path))
    assert "--backend openvino" in str(err.value)
    assert "--precision int8 --calibration BAG|IMAGE_FOLDER|synthetic" in str(err.value)


def test_int8_artifact_with_accuracy_then_loaded_by_node_settings(source, cache, frames):
    spec = calibration_spec("synthetic", frames=4, held_out=4)
    built = create_backend("openvino", source, precision="int8", cache=cache, calibration=spec)
    built.prepare(1, H, W)
    (path,) = [p for p in built.artifacts().values() if OV_INT8_ARTIFACT in p]
    import onnx

    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    key = json.loads(props["mfaranet_ros.cache_key"])
    assert key["artifact"] == "openvino-int8" and key["calibration"]["frames"] == 4
    accuracy = json.loads(props["mfaranet_ros.accuracy"])
    assert accuracy["label_agreement"] >= 0.98 and abs(accuracy["miou_delta_points"]) <= 1.5
    loaded = create_backend("openvino", source, precision="int8", cache=cache)
    fp32 = create_backend("openvino", source, precision="fp32", cache=cache)
    assert np.mean(loaded.run(frames[:1])[0] == fp32.run(frames[:1])[0]) >= 0.97
    assert loaded.artifacts() == {(H, W, False): path}


def test_bench_rows_carry_precision_and_agreement(source, cache):
    """One interleaved run: fp32 eager baseline, ONNX Runtime int8, OpenVINO fp32/int8
    (the int8 artifacts are those the tests above calibrated), and an unavailable pair."""
    from mfaranet_ros.bench.backends import parse_backends
    from mfaranet_ros.bench.segmenter import bench_segmenter

    pytest.importorskip("onnxruntime.quantization")
    if not list(cache.path.glob("mfaranet-onnx-int8-*.onnx")):
        create_backend("onnxruntime", source, precision="int8", cache=cache,
                       calibration=calibration_spec("synthetic", frames=4, held_out=4)
                       ).prepare(1, H, W)
    pairs = parse_backends("onnxruntime:int8,openvino,openvino:int8,torch:int8")
    rows = bench_segmenter(source.path, pairs, [(H, W)], iterations=1, warmup=0,
                           cache_dir=str(cache.path))
    by_label = {f"{r.backend}:{r.precision}": r for r in rows}
    for label in ("onnxruntime:int8", "openvino:fp32", "openvino:int8"):
        row = by_label[label]
        assert row.error is None and row.model.median_ms > 0, label
        assert row.label_agreement >= 0.95, (label, row.label_agreement)
        assert row.as_dict()["precision"] == label.split(":")[1]
    assert "int8 runs on onnxruntime, openvino" in by_label["torch:int8"].error
