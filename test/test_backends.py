"""Backends: parity with torch fp32 eager, the artifact cache, `auto`, TensorRT checks, GPU
paths."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch
from inference_frames import scene

from mfaranet_ros.inference import BackendUnavailable, Segmenter
from mfaranet_ros.inference.backends import ModelSource
from mfaranet_ros.inference.backends.tensorrt_backend import tensorrt_cache_key
from mfaranet_ros.inference.backends.tensorrt_compat import check_torch_tensorrt_version
from mfaranet_ros.inference.cache import lookup, resolve_cache_dir, store
from mfaranet_ros.model import load_checkpoint

FRAMES = [(64, 128, 11), (64, 128, 12)]


def _frames():
    return [scene(h, w, s) for h, w, s in FRAMES]


def eager_reference(checkpoint, frames, pruned=False):
    """torch fp32 eager, NCHW, argmax over the logits; written independently of the Segmenter."""
    model, meta = load_checkpoint(checkpoint, pruned=pruned, return_metadata=True)
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for f in frames:
            x = (torch.from_numpy(f).permute(2, 0, 1)[None].float() - mean) / std
            logits = model(x)
            out.append((logits.argmax(1)[0].numpy().astype(np.uint8),
                        torch.softmax(logits, 1).amax(1)[0].numpy()))
    return out


def agreement(a, b) -> float:
    return float(np.mean(np.concatenate([(x == y).ravel() for x, y in zip(a, b)])))


@pytest.fixture(scope="module")
def reference(varied_checkpoint):
    return {p: eager_reference(varied_checkpoint, _frames(), pruned=p) for p in (False, True)}


PARITY = {}  # (backend, pruned) -> fraction of identical labels, printed at the end


@pytest.fixture(scope="module", autouse=True)
def report_parity():
    yield
    if PARITY:
        print("\nparity vs torch fp32 eager (identical labels): " +
              ", ".join(f"{k}: {v * 100:.3f} %" for k, v in sorted(PARITY.items())))


def _check_parity(seg, reference, pruned, confidence=False, threshold=0.999):
    ref = reference[pruned]
    labels = [r.labels for r in seg.segment_batch(_frames(), confidence=confidence)]
    # The reference is not trivial: several classes on every frame.
    assert all(len(np.unique(r[0])) >= 10 for r in ref)
    agree = agreement(labels, [r[0] for r in ref])
    variant = "pruned" if pruned else "full"
    PARITY[f"{seg.backend_name}/{seg.device}/{seg.precision}/{variant}"] = agree
    assert agree >= threshold, f"{seg.describe()} pruned={pruned}: {agree:.5f} identical labels"
    return agree


@pytest.mark.parametrize("pruned", [False, True], ids=["full", "pruned"])
def test_torch_cpu_parity(varied_checkpoint, reference, inference_cache_dir, pruned):
    seg = Segmenter.from_checkpoint(varied_checkpoint, backend="torch", device="cpu",
                                    pruned=pruned, cache_dir=inference_cache_dir)
    assert "channels_last" in seg.describe()
    _check_parity(seg, reference, pruned)


def test_onnxruntime_parity_and_cache(varied_checkpoint, reference, inference_cache_dir, caplog):
    with caplog.at_level(logging.INFO, logger="mfaranet_ros"):
        seg = Segmenter.from_checkpoint(varied_checkpoint, backend="onnxruntime",
                                        cache_dir=inference_cache_dir)
        assert seg.backend_name == "onnxruntime" and seg.device == "cpu"
        _check_parity(seg, reference, pruned=False)
    assert any("exporting" in r.getMessage() and "cached at" in r.getMessage()
               for r in caplog.records)
    (path,) = seg.backend.artifacts().values()
    assert os.path.dirname(path) == str(inference_cache_dir)

    # The file says what it is: opset >= 17, metadata in metadata_props.
    import onnx
    proto = onnx.load(path)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads(props["mfaranet_ros.metadata"])
    assert meta["class_names"][0] == "road" and len(meta["palette"]) == 19
    key = json.loads(props["mfaranet_ros.cache_key"])
    assert key["checkpoint_sha256"] == ModelSource(varied_checkpoint).sha256
    assert key["input_hw"] == [64, 128] and key["pruned"] is False
    # The flow warps are exported as gathers, not ONNX Runtime's slow CPU GridSample.
    assert key["grid_sample"] == "gather"
    ops = {n.op_type for n in proto.graph.node}
    assert "GridSample" not in ops and "Gather" in ops

    # A second segmenter reuses the file without exporting.
    caplog.clear()
    mtime = os.stat(path).st_mtime_ns
    with caplog.at_level(logging.INFO, logger="mfaranet_ros"):
        again = Segmenter.from_checkpoint(varied_checkpoint, backend="onnxruntime",
                                          cache_dir=inference_cache_dir)
        again.warmup((64, 128))
    assert not any("exporting" in r.getMessage() for r in caplog.records)
    assert again.backend.artifacts()[(64, 128, False)] == path
    assert os.stat(path).st_mtime_ns == mtime


def test_onnxruntime_pruned_confidence_unwritable_cache(varied_checkpoint, reference, tmp_path,
                                                        caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="mfaranet_ros"):
        seg = Segmenter.from_checkpoint(varied_checkpoint, backend="onnxruntime", pruned=True,
                                        cache_dir=blocker / "cache")
    assert any("not writable" in r.getMessage() for r in caplog.records)
    _check_parity(seg, reference, pruned=True, confidence=True)
    assert seg.backend.artifacts() == {}          # built in memory, nothing written
    conf = seg.segment(_frames()[0], confidence=True).confidence
    np.testing.assert_allclose(conf, reference[True][0][1], atol=1e-4)


def test_each_backend_runs_its_own_array_type(varied_checkpoint, reference, inference_cache_dir):
    """One ``run`` per backend: torch tensors for torch, numpy arrays for ONNX Runtime."""
    from mfaranet_ros.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
    from mfaranet_ros.inference.backends.torch_backend import TorchBackend

    source = ModelSource(varied_checkpoint)
    pixels = np.stack(_frames())
    torch_be = TorchBackend(source, "cpu")
    labels, conf = torch_be.run(torch.from_numpy(pixels), confidence=True)
    assert torch_be.array_type == "torch"
    assert isinstance(labels, torch.Tensor) and labels.dtype == torch.uint8
    assert conf.dtype == torch.float32 and tuple(conf.shape) == pixels.shape[:3]
    ort_be = OnnxRuntimeBackend(source, "cpu", cache=resolve_cache_dir(inference_cache_dir))
    ort_labels, ort_conf = ort_be.run(pixels)
    assert ort_be.array_type == "numpy" and ort_conf is None
    assert isinstance(ort_labels, np.ndarray) and ort_labels.dtype == np.uint8
    ref = [r[0] for r in reference[False]]
    assert agreement(list(labels.numpy()), ref) >= 0.999
    assert agreement(list(ort_labels), ref) >= 0.999


def test_cache_rejects_stale_and_truncated_entries(tmp_path):
    key = {"format": "x", "checkpoint_sha256": "ab" * 32, "torch": "2.13.0", "input_hw": [8, 8]}
    path = store(tmp_path, "thing", key, "bin", lambda p: p.write_bytes(b"artifact"))
    assert lookup(tmp_path, "thing", key, "bin") == (path, "")
    # Another torch version -> another file name, and no entry.
    newer = dict(key, torch="2.14.0")
    found, why = lookup(tmp_path, "thing", newer, "bin")
    assert found is None and "no cached entry" in why
    # A stale manifest under the right name (copied / foreign): rejected, with the field named.
    manifest = path.with_suffix(".json")
    recorded = json.loads(manifest.read_text())
    recorded["key"]["torch"] = "2.1.0"
    manifest.write_text(json.dumps(recorded))
    found, why = lookup(tmp_path, "thing", key, "bin")
    assert found is None and "torch" in why and "2.1.0" in why
    # Truncated artifact: rejected by its hash.
    path = store(tmp_path, "thing", key, "bin", lambda p: p.write_bytes(b"artifact"))
    path.write_bytes(b"art")
    found, why = lookup(tmp_path, "thing", key, "bin")
    assert found is None and "hash" in why


def test_a_cached_onnx_file_must_carry_the_key_its_manifest_claims(varied_checkpoint,
                                                                   inference_cache_dir,
                                                                   tmp_path, caplog):
    """A file whose embedded key is not its manifest's (a manifest copied next to someone
    else's file, its hash made to match) is exported again, not loaded; both CPU runtimes
    load the fp32 export through this path. One export: the entry comes from the shared
    cache when the parity test made it."""
    import shutil

    import onnx

    from mfaranet_ros.inference.cache import file_sha256
    from mfaranet_ros.inference.onnx_artifacts import embed_props, embedded_props, fp32_onnx

    source = ModelSource(varied_checkpoint)
    for entry in inference_cache_dir.glob("mfaranet-onnx-*"):
        shutil.copy(entry, tmp_path)
    cache = resolve_cache_dir(tmp_path)
    _, path = fp32_onnx(source, cache, 64, 128, False)
    assert fp32_onnx(source, cache, 64, 128, False)[1] == path     # a verified hit
    manifest = path.with_suffix(".json")
    recorded = json.loads(manifest.read_text())
    proto = onnx.load(str(path))
    embed_props(proto, {"cache_key": json.dumps(dict(recorded["key"], input_hw=[32, 64]))})
    onnx.save(proto, str(path))
    manifest.write_text(json.dumps(dict(recorded, artifact_sha256=file_sha256(path))))
    with caplog.at_level(logging.INFO, logger="mfaranet_ros"):
        _, again = fp32_onnx(source, cache, 64, 128, False)
    assert any("does not carry the key" in r.getMessage() for r in caplog.records)
    assert any("exporting" in r.getMessage() for r in caplog.records)
    assert again == path
    assert json.loads(embedded_props(again)["cache_key"]) == recorded["key"]


def test_default_cache_dir_is_persistent(monkeypatch, tmp_path):
    monkeypatch.delenv("MFARANET_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    resolved = resolve_cache_dir()
    assert resolved.path == tmp_path / "xdg" / "mfaranet_ros" and resolved.writable
    monkeypatch.setenv("MFARANET_CACHE_DIR", str(tmp_path / "explicit"))
    assert resolve_cache_dir().path == tmp_path / "explicit"


def test_auto_falls_back_with_reasons(tiny_checkpoint, inference_cache_dir, caplog):
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: auto picks a GPU backend")
    with caplog.at_level(logging.WARNING, logger="mfaranet_ros"):
        seg = Segmenter.from_checkpoint(tiny_checkpoint, backend="auto",
                                        cache_dir=inference_cache_dir)
    assert seg.backend_name == "onnxruntime" and seg.device == "cpu"
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "tensorrt" in text and "torch on cuda: no CUDA device" in text


def test_cuda_requests_without_cuda_are_clear(tiny_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", device="cuda")
    with pytest.raises(BackendUnavailable, match="fp16 needs a CUDA device"):
        Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", device="cpu", precision="fp16")
    with pytest.raises(BackendUnavailable, match="runs fp32, int8, not fp16"):
        Segmenter.from_checkpoint(tiny_checkpoint, backend="onnxruntime", precision="fp16")


@pytest.mark.parametrize("version, ok", [
    ("2.6.0", False), ("2.7.0+cu128", False), ("2.8.0", True), ("2.8.0a0+jetson", True),
    ("2.12.1", True), ("3.0.0.dev20260101", True),
])
def test_torch_tensorrt_version_floor(version, ok):
    if ok:
        check_torch_tensorrt_version(version)
    else:
        with pytest.raises(BackendUnavailable, match="grid_sample"):
            check_torch_tensorrt_version(version)


def test_tensorrt_cache_key_names_everything(tiny_checkpoint, tmp_path):
    source = ModelSource(tiny_checkpoint)
    common = dict(torch_tensorrt_version="2.8.0", tensorrt_version="10.3.0",
                  gpu_name="Orin (nvgpu)", compute_capability=(8, 7))
    key = tensorrt_cache_key(source, 1, 512, 1024, "fp16", False, **common)
    assert key["checkpoint_sha256"] == source.sha256 and len(key["checkpoint_sha256"]) == 64
    assert key["input_shape"] == [1, 512, 1024, 3]
    assert (key["precision"], key["gpu"], key["tensorrt"], key["torch_tensorrt"]) == \
        ("fp16", "Orin (nvgpu)", "10.3.0", "2.8.0")
    assert key["torch"] == torch.__version__
    store(tmp_path, "mfaranet-trt", key, "ep", lambda p: p.write_bytes(b"engine"))
    assert lookup(tmp_path, "mfaranet-trt", key, "ep")[0] is not None
    pruned = ModelSource(tiny_checkpoint, pruned=True)
    variants = [
        tensorrt_cache_key(source, 1, 512, 1024, "fp32", False, **common),
        tensorrt_cache_key(source, 2, 512, 1024, "fp16", False, **common),
        tensorrt_cache_key(source, 1, 512, 1024, "fp16", True, **common),
        tensorrt_cache_key(source, 1, 512, 1024, "fp16", False,
                           **dict(common, gpu_name="NVIDIA H100")),
        tensorrt_cache_key(source, 1, 512, 1024, "fp16", False,
                           **dict(common, tensorrt_version="10.9")),
        tensorrt_cache_key(pruned, 1, 512, 1024, "fp16", False, **common),
    ]
    for other in variants:
        assert other != key
        assert lookup(tmp_path, "mfaranet-trt", other, "ep")[0] is None


def test_gather_grid_sample_equals_grid_sample():
    from mfaranet_ros.inference.graph import GatherGridSample, gather_grid_sample

    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 9)
    grid = torch.rand(2, 11, 13, 2) * 2.4 - 1.2          # some samples outside the image
    grid[0, 0, 0] = torch.tensor([1.0, 1.0])             # exact corners and edges
    grid[0, 0, 1] = torch.tensor([-1.0, -1.0])
    expected = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                               align_corners=True)
    torch.testing.assert_close(gather_grid_sample(x, grid), expected, atol=1e-5, rtol=1e-5)
    with GatherGridSample():
        routed = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                                 align_corners=True)
        # Other settings are left to PyTorch.
        nearest = torch.nn.functional.grid_sample(x, grid, mode="nearest", align_corners=True)
    torch.testing.assert_close(routed, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        nearest, torch.nn.functional.grid_sample(x, grid, mode="nearest", align_corners=True))


# ----------------------------------------------------------------------------- GPU only

@pytest.mark.gpu
@pytest.mark.parametrize("pruned", [False, True], ids=["full", "pruned"])
def test_cuda_fp16_parity(varied_checkpoint, reference, inference_cache_dir, pruned):
    seg = Segmenter.from_checkpoint(varied_checkpoint, backend="torch", device="cuda",
                                    precision="fp16", pruned=pruned, cache_dir=inference_cache_dir)
    _check_parity(seg, reference, pruned, threshold=0.995)


@pytest.mark.gpu
def test_cuda_compile_parity(varied_checkpoint, reference, inference_cache_dir):
    seg = Segmenter.from_checkpoint(varied_checkpoint, backend="torch", device="cuda",
                                    compile=True, cache_dir=inference_cache_dir)
    _check_parity(seg, reference, pruned=False)


@pytest.mark.gpu
def test_tensorrt_parity_and_alignment(varied_checkpoint, reference, inference_cache_dir):
    torch_tensorrt = pytest.importorskip("torch_tensorrt")
    from mfaranet_ros.model.alignment import RecursiveAlignment

    # The flow warp alone: guards the 2.6/2.7 bilinear-as-nearest grid_sample converter bug.
    torch.manual_seed(0)
    align = RecursiveAlignment(128).eval().cuda()
    feats = [torch.randn(1, 128, 32 // s, 64 // s, device="cuda") for s in (1, 2, 4, 4)]
    with torch.no_grad():
        expected = align(feats)
        trt = torch_tensorrt.compile(align, ir="dynamo", arg_inputs=[feats], min_block_size=1)
        got = trt(feats)
    for e, g in zip(expected, got):
        assert (e - g).abs().max().item() < 1e-3
    for precision, threshold in (("fp32", 0.999), ("fp16", 0.995)):
        seg = Segmenter.from_checkpoint(varied_checkpoint, backend="tensorrt", precision=precision,
                                        cache_dir=inference_cache_dir)
        _check_parity(seg, reference, pruned=False, threshold=threshold)
