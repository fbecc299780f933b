"""The Segmenter: outputs at the source size, colour/overlay/confidence, batching, letterbox,
errors, the input size a checkpoint records, and both processing implementations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_frames import scene

from mfaranet_ros.inference import SegmentationResult, Segmenter, resolve_input_size
from mfaranet_ros.inference.device_processing import DeviceProcessing
from mfaranet_ros.inference.processing import (
    HostProcessing,
    blend,
    colorize,
    letterbox_geometry,
    letterbox_into,
    palette_lut,
    restore_confidence,
    restore_labels,
)
from mfaranet_ros.model import cityscapes_metadata, load_checkpoint


@pytest.fixture(scope="module")
def seg(tiny_checkpoint, inference_cache_dir):
    return Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", device="cpu",
                                     cache_dir=inference_cache_dir)


@pytest.fixture(scope="module")
def seg_fixed(tiny_checkpoint, inference_cache_dir):
    return Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", device="cpu",
                                     input_size=(64, 128), cache_dir=inference_cache_dir)


def eager_labels(checkpoint, frame: np.ndarray) -> np.ndarray:
    """Reference written from scratch: normalise, plain NCHW fp32 eager, argmax."""
    model, meta = load_checkpoint(checkpoint, return_metadata=True)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    x = (x - torch.tensor(meta.mean).view(1, 3, 1, 1)) / torch.tensor(meta.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        return model(x).argmax(1)[0].numpy().astype(np.uint8)


def test_properties(seg, tiny_checkpoint):
    assert seg.backend_name == "torch"
    assert seg.device == "cpu"
    assert seg.input_size is None
    assert seg.metadata.num_classes == 19
    assert seg.metadata.palette[0] == [128, 64, 128]


def test_segment_outputs_at_source_size(seg, tiny_checkpoint):
    frame = scene(48, 80, seed=1)
    r = seg.segment(frame, confidence=True, overlay_alpha=0.25)
    assert isinstance(r, SegmentationResult)
    assert r.labels.shape == (48, 80) and r.labels.dtype == np.uint8
    assert r.color.shape == (48, 80, 3) and r.color.dtype == np.uint8
    assert r.overlay.shape == (48, 80, 3) and r.overlay.dtype == np.uint8
    assert r.confidence.shape == (48, 80) and r.confidence.dtype == np.float32
    assert set(r.timings) == {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in r.timings.values())
    # Full resolution: exactly the eager model's argmax.
    np.testing.assert_array_equal(r.labels, eager_labels(tiny_checkpoint, frame))
    # Colour is the palette of the label; overlay the alpha blend of frame and colour.
    palette = np.asarray(seg.metadata.palette, np.uint8)
    np.testing.assert_array_equal(r.color, palette[r.labels])
    expected = np.round(0.75 * frame.astype(np.float64) + 0.25 * r.color).astype(np.int16)
    assert np.abs(r.overlay.astype(np.int16) - expected).max() <= 1
    # Confidence is the max softmax probability: in [1/C, 1].
    assert r.confidence.min() >= 1.0 / 19 - 1e-6 and r.confidence.max() <= 1.0 + 1e-6


def test_optional_outputs_off(seg):
    r = seg.segment(scene(40, 40), color=False, overlay=False)
    assert r.color is None and r.overlay is None and r.confidence is None
    assert r.labels.shape == (40, 40)


def test_batch_of_different_sizes(seg):
    frames = [scene(48, 80, 1), scene(32, 64, 2), scene(48, 80, 3)]
    results = seg.segment_batch(frames, overlay=False)
    assert [r.labels.shape for r in results] == [(48, 80), (32, 64), (48, 80)]
    for f, r in zip(frames, results):
        np.testing.assert_array_equal(r.labels, seg.segment(f).labels)
        assert r.timings["batch_size"] == 3
        assert set(r.timings) == {"preprocess", "inference", "postprocess", "batch_size"}
    assert seg.segment_batch([]) == []


def test_fixed_input_size_letterbox(seg_fixed):
    assert seg_fixed.input_size == (64, 128)
    # Same aspect (downscale 2x), taller and wider frames: labels always at the source size.
    frames = [scene(128, 256, 4), scene(100, 60, 5), scene(30, 200, 6)]
    results = seg_fixed.segment_batch(frames)
    for f, r in zip(frames, results):
        assert r.labels.shape == f.shape[:2]
        assert r.overlay.shape == f.shape
    # A frame that is exactly the network size runs unchanged.
    f = scene(64, 128, 7)
    direct = seg_fixed.segment(f).labels
    box = letterbox_geometry((64, 128), (64, 128))
    assert box.is_identity
    assert direct.shape == (64, 128)


def test_letterbox_geometry_and_restore():
    box = letterbox_geometry((100, 60), (64, 128))
    assert box.valid == (64, 38)                      # height-limited, aspect kept
    box2 = letterbox_geometry((1024, 2048), (512, 1024))
    assert box2.valid == (512, 1024)                  # same aspect: plain resize
    frame = scene(100, 60)
    canvas = np.zeros((64, 128, 3), np.uint8)
    fill = np.array([124, 116, 104], np.uint8)
    letterbox_into(frame, canvas, box, fill)
    assert (canvas[:, 38:] == fill).all()
    labels = np.arange(64 * 128, dtype=np.int64).reshape(64, 128).astype(np.uint8)
    back = restore_labels(labels, box)
    assert back.shape == (100, 60)
    assert set(np.unique(back)) <= set(np.unique(labels[:, :38]))


def test_palette_lut_colorize_blend():
    lut = palette_lut([[1, 2, 3], [4, 5, 6]])
    labels = np.array([[0, 1], [255, 1]], np.uint8)
    col = colorize(labels, lut)
    assert col.tolist() == [[[1, 2, 3], [4, 5, 6]], [[0, 0, 0], [4, 5, 6]]]
    out = blend(np.full((2, 2, 3), 200, np.uint8), np.zeros((2, 2, 3), np.uint8), 0.5)
    assert (out == 100).all()
    with pytest.raises(ValueError, match="overlay_alpha"):
        blend(col, col, 1.5)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((8, 8, 3), np.float32), "dtype uint8"),
    (np.zeros((8, 8), np.uint8), "rank 3"),
    (np.zeros((1, 8, 8, 3), np.uint8), "rank 3"),
    (np.zeros((8, 8, 4), np.uint8), "3 channels"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_frames_raise(seg, bad, words):
    with pytest.raises(ValueError, match=words):
        seg.segment(bad)
    with pytest.raises(ValueError, match=f"frame 1.*{words}"):
        seg.segment_batch([scene(8, 8), bad])


def test_bad_arguments(tiny_checkpoint, inference_cache_dir):
    with pytest.raises(ValueError, match="input_size"):
        Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", input_size=(8, 8))
    with pytest.raises(ValueError, match="precision"):
        Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", precision="int4")
    with pytest.raises(ValueError, match="unknown backend"):
        Segmenter.from_checkpoint(tiny_checkpoint, backend="tensorflow")
    with pytest.raises(ValueError, match="device"):
        Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", device="tpu")


def test_strided_views_are_accepted(seg, seg_fixed):
    bgr = scene(48, 80, 8)[..., ::-1]             # e.g. an RGB view of a BGR buffer
    crop = scene(96, 160, 9)[::2, 10:90]          # strided crop
    for s in (seg, seg_fixed):
        for f in (bgr, crop):
            r = s.segment(f)
            np.testing.assert_array_equal(r.labels, s.segment(np.ascontiguousarray(f)).labels)
            assert r.overlay.shape == f.shape


def test_checkpoint_metadata_must_fit_uint8_labels(tmp_path):
    from mfaranet_ros.model import MFARANet, ModelMetadata, save_checkpoint

    n = 300
    meta = ModelMetadata(class_names=[f"c{i}" for i in range(n)],
                         palette=[[i % 256, 0, 0] for i in range(n)])
    path = tmp_path / "c300.pth"
    save_checkpoint(path, MFARANet(n, boundary_heads=False), meta)
    with pytest.raises(ValueError, match="300 classes do not fit uint8"):
        Segmenter.from_checkpoint(path, backend="torch", device="cpu", cache_dir=tmp_path)


def test_warmup_returns_seconds(seg_fixed):
    t = seg_fixed.warmup((96, 200))
    assert isinstance(t, float) and t > 0


@pytest.mark.parametrize("input_size", [None, (64, 128)], ids=["full-res", "letterbox"])
def test_device_processing_matches_host_path(varied_checkpoint, inference_cache_dir, input_size):
    """The GPU path's torch pre/post-processing, run on the CPU, against numpy/OpenCV."""
    kw = dict(backend="torch", device="cpu", input_size=input_size, cache_dir=inference_cache_dir)
    host = Segmenter.from_checkpoint(varied_checkpoint, **kw)
    dev = Segmenter.from_checkpoint(varied_checkpoint, device_processing=True, **kw)
    assert dev.device_processing and not host.device_processing
    frames = [scene(128, 256, 21), scene(64, 128, 22), scene(50, 90, 23)]
    for a, b in zip(host.segment_batch(frames, confidence=True),
                    dev.segment_batch(frames, confidence=True)):
        assert a.labels.shape == b.labels.shape and b.labels.dtype == np.uint8
        assert len(np.unique(a.labels)) >= 5
        # At full resolution both paths feed identical pixels. Letterboxing resizes with
        # OpenCV on the host and torch on the device: inputs differ by about 1 grey level
        # (test below), which flips ~1 % of this deliberately tie-rich model's labels.
        assert np.mean(a.labels == b.labels) >= (0.999 if input_size is None else 0.98)
        same = a.labels == b.labels
        np.testing.assert_array_equal(a.color[same], b.color[same])
        assert np.abs(a.overlay.astype(int) - b.overlay.astype(int))[same].max() <= 1
        assert np.abs(a.confidence - b.confidence)[same].mean() < 0.02
        assert set(b.timings) == {"preprocess", "inference", "postprocess", "batch_size"}


def test_device_letterbox_and_label_restore_match_opencv():
    fill = np.array([124, 116, 104], np.uint8)
    dp = DeviceProcessing("cpu", palette_lut([[0, 0, 0]]), fill)
    rng = np.random.default_rng(0)
    for shape in [(128, 256), (64, 128), (50, 90), (30, 200)]:
        frame = scene(*shape, seed=3)
        box = letterbox_geometry(shape, (64, 128))
        host = np.zeros((64, 128, 3), np.uint8)
        letterbox_into(frame, host, box, fill)
        dev = dp.letterbox(dp.upload([frame]), [box], (64, 128))[0].numpy()
        diff = np.abs(host.astype(int) - dev)
        if shape[0] % box.valid[0] == 0 and shape[1] % box.valid[1] == 0:
            assert diff.max() <= 1          # integer factor: the same box average
        else:
            assert diff.mean() < 2.0        # antialiased bilinear vs OpenCV's INTER_AREA
        labels = rng.integers(0, 19, (64, 128)).astype(np.uint8)
        np.testing.assert_array_equal(restore_labels(labels, box),
                                      dp.restore_labels(torch.from_numpy(labels), box).numpy())


# ----------------------------------------------------------- the input size, from the artifact

def test_input_size_resolution_and_reason():
    recorded = cityscapes_metadata(input_size=[256, 512])
    silent = cityscapes_metadata()
    assert resolve_input_size("checkpoint", recorded) == (
        (256, 512), "256x512, recorded in the checkpoint")
    assert resolve_input_size("checkpoint", silent) == (
        None, "full resolution: the checkpoint records no input size")
    assert resolve_input_size(None, recorded) == (None, "full resolution, requested")
    assert resolve_input_size([96, 160], recorded) == ((96, 160), "96x160, requested")
    for bad, words in (("full", "'checkpoint', None"), ((8, 8), "at least 32x32"),
                       ((1, 2, 3), "None or \\(H, W\\)")):
        with pytest.raises(ValueError, match=words):
            resolve_input_size(bad, recorded)
    with pytest.raises(ValueError, match="recorded input size cannot be used"):
        resolve_input_size("checkpoint", cityscapes_metadata(input_size=[16, 16]))


def test_default_input_size_is_the_checkpoints(tmp_path, seg, inference_cache_dir, caplog):
    from mfaranet_ros.model import MFARANet, save_checkpoint

    assert seg.input_size_reason == "full resolution: the checkpoint records no input size"
    torch.manual_seed(0)
    path = tmp_path / "recorded.pth"
    save_checkpoint(path, MFARANet(19), cityscapes_metadata(source="test", input_size=[64, 128]))
    with caplog.at_level("INFO", logger="mfaranet_ros"):
        recorded = Segmenter.from_checkpoint(path, backend="torch", device="cpu",
                                             cache_dir=inference_cache_dir)
    assert recorded.input_size == (64, 128)
    assert recorded.input_size_reason == "64x128, recorded in the checkpoint"
    assert any("64x128, recorded in the checkpoint" in r.getMessage() for r in caplog.records)
    assert recorded.segment(scene(96, 160, 31)).labels.shape == (96, 160)
    # None asks for full resolution explicitly, whatever the checkpoint records.
    full = Segmenter(recorded.backend, recorded.metadata, None)
    assert full.input_size is None and full.input_size_reason == "full resolution, requested"
    assert full.network_shape((96, 160)) == (96, 160)


# ------------------------------------------------------ one interface, two implementations

FILL = np.array([124, 116, 104], np.uint8)
LUT = palette_lut([[128, 64, 128], [244, 35, 232], [70, 70, 70]])


def _implementations():
    return {"host": HostProcessing(LUT, FILL), "device": DeviceProcessing("cpu", LUT, FILL)}


@pytest.mark.parametrize("name", ["host", "device"])
def test_processing_steps_match_the_host_functions(name):
    """Each step of either implementation, on the CPU, against the numpy / OpenCV functions."""
    proc = _implementations()[name]
    rng = np.random.default_rng(5)
    frames = [scene(48, 80, 41), scene(48, 80, 42)]
    images = proc.upload(frames)
    batch = proc.stack(images)
    assert tuple(batch.shape) == (2, 48, 80, 3)
    np.testing.assert_array_equal(proc.download(batch), np.stack(frames))
    box = letterbox_geometry((48, 80), (64, 128))
    canvas = proc.download(proc.letterbox(images, [box, box], (64, 128)))
    assert canvas.shape == (2, 64, 128, 3) and canvas.dtype == np.uint8
    assert (canvas[:, box.valid[0]:] == FILL).all()
    labels = rng.integers(0, 3, (64, 128)).astype(np.uint8)
    conf = rng.uniform(0.3, 1.0, (64, 128)).astype(np.float32)
    net_labels, net_conf = proc.upload([labels, conf])
    restored = proc.restore_labels(net_labels, box)
    np.testing.assert_array_equal(proc.download(restored), restore_labels(labels, box))
    got_conf = proc.download(proc.restore_confidence(net_conf, box))
    assert got_conf.dtype == np.float32
    np.testing.assert_allclose(got_conf, restore_confidence(conf, box), atol=1e-5)
    color = proc.colorize(restored)
    np.testing.assert_array_equal(proc.download(color), colorize(restore_labels(labels, box), LUT))
    overlay = proc.download(proc.blend(images[0], color, 0.3))
    expected = blend(frames[0], colorize(restore_labels(labels, box), LUT), 0.3)
    assert np.abs(overlay.astype(int) - expected).max() <= 1
    assert proc.download(None) is None


def test_processing_is_chosen_by_the_backend(seg, tiny_checkpoint, inference_cache_dir):
    # The torch backend takes tensors; on the CPU the host processes them (cheaper there).
    assert seg.backend.array_type == "torch"
    assert isinstance(seg.processing, HostProcessing) and not seg.device_processing
    ort = Segmenter.from_checkpoint(tiny_checkpoint, backend="onnxruntime", input_size=None,
                                    cache_dir=inference_cache_dir)
    assert ort.backend.array_type == "numpy" and isinstance(ort.processing, HostProcessing)
    with pytest.raises(ValueError, match="no device-side processing path"):
        Segmenter(ort.backend, ort.metadata, None, device_processing=True)


@pytest.mark.parametrize("device_processing", [False, True], ids=["host", "device"])
def test_run_network_is_the_backend_alone(seg, device_processing):
    """The benchmark's bare-model call: a batch at network size, no letterbox, no colour."""
    s = Segmenter(seg.backend, seg.metadata, None, device_processing=device_processing)
    pixels = np.stack([scene(32, 64, 51), scene(32, 64, 52)])
    labels, conf = s.run_network(pixels, confidence=True)
    assert labels.shape == (2, 32, 64) and labels.dtype == np.uint8
    assert conf.shape == (2, 32, 64) and conf.dtype == np.float32
    for frame, lab in zip(pixels, labels):
        np.testing.assert_array_equal(lab, seg.segment(frame).labels)
    assert s.run_network(pixels)[1] is None


@pytest.mark.parametrize("device_processing", [False, True])
def test_network_resolution_results_are_the_frames_region_at_network_scale(
        varied_checkpoint, inference_cache_dir, device_processing):
    """``network_resolution``: labels, colour, overlay and confidence at the network's scale,
    the letterbox padding cut off: 96x128 into 64x128 (s = 2/3) gives 64x85; upscaled with
    nearest they are the camera-resolution labels; a frame of the input's aspect ratio
    gives the whole input."""
    import cv2

    seg = Segmenter.from_checkpoint(varied_checkpoint, backend="torch", device="cpu",
                                    input_size=(64, 128), cache_dir=inference_cache_dir,
                                    device_processing=device_processing)
    frame = scene(96, 128, 31)
    full = seg.segment(frame, confidence=True)
    net = seg.segment(frame, confidence=True, network_resolution=True)
    assert net.labels.shape == (64, 85) and net.color.shape == net.overlay.shape == (64, 85, 3)
    assert net.confidence.shape == (64, 85) and len(np.unique(net.labels)) >= 3
    np.testing.assert_array_equal(
        cv2.resize(net.labels, (128, 96), interpolation=cv2.INTER_NEAREST), full.labels)
    np.testing.assert_array_equal(net.color, seg_palette(seg)[net.labels])
    small = cv2.resize(frame, (85, 64), interpolation=cv2.INTER_AREA)
    want = cv2.addWeighted(small, 0.5, net.color, 0.5, 0.0)
    assert np.abs(net.overlay.astype(int) - want).mean() < (1.5 if device_processing else 0.01)
    assert seg.segment(scene(128, 256, 32), network_resolution=True).labels.shape == (64, 128)


def seg_palette(seg):
    return palette_lut(seg.metadata.palette)


# ------------------------------------------------ results written where the caller wants them

@pytest.mark.parametrize("device_processing", [False, True], ids=["host", "device"])
@pytest.mark.parametrize("input_size, network_resolution", [
    ((64, 128), False), ((64, 128), True), (None, False)],
    ids=["upscaled", "network-resolution", "full-resolution"])
def test_into_writes_each_output_once_into_the_callers_array(
        varied_checkpoint, inference_cache_dir, device_processing, input_size,
        network_resolution):
    """``into``: labels, colour and overlay land in the arrays the caller gives (e.g. a
    message's buffer), as those very arrays (no copy after them), equal to the results
    without ``into``; an output the caller gives nothing for is allocated as before."""
    seg = Segmenter.from_checkpoint(varied_checkpoint, backend="torch", device="cpu",
                                    input_size=input_size, cache_dir=inference_cache_dir,
                                    device_processing=device_processing)
    frames = [scene(96, 130, 61), scene(80, 100, 62)]   # 96x130: a non-integer scale
    kw = dict(confidence=True, network_resolution=network_resolution, overlay_alpha=0.4)
    plain = seg.segment_batch(frames, **kw)
    given = {}

    def into(index, name, shape):
        if (index, name) == (1, "color"):
            return None
        given[index, name] = np.full(shape, 7, np.uint8)
        return given[index, name]

    results = seg.segment_batch(frames, into=into, **kw)
    assert sorted(given) == [(0, "color"), (0, "labels"), (0, "overlay"), (1, "labels"),
                             (1, "overlay")]
    for i, (a, b) in enumerate(zip(plain, results)):
        for name in ("labels", "color", "overlay"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            if (i, name) in given:
                assert getattr(b, name) is given[i, name]
        np.testing.assert_array_equal(a.confidence, b.confidence)
    with pytest.raises(ValueError, match="into: labels needs a writable contiguous uint8"):
        seg.segment(frames[0], into=lambda i, name, shape: np.zeros((3, 3), np.uint8))


@pytest.mark.parametrize("source", [(96, 130), (64, 128), (200, 301), (47, 1000)])
def test_host_colours_at_network_size_then_enlarged_equal_the_enlarged_labels_coloured(source):
    """The host colours the network's pixels and enlarges the colours: the same image as
    colouring the enlarged labels, also at scales that are no integer."""
    rng = np.random.default_rng(9)
    lut = rng.integers(0, 256, (256, 3)).astype(np.uint8)
    proc = HostProcessing(lut, FILL)
    labels = rng.integers(0, 19, (64, 128)).astype(np.uint8)
    box = letterbox_geometry(source, (64, 128))
    restored = restore_labels(labels, box)
    out = np.empty((*source, 3), np.uint8)
    got = proc.restore_colors(labels, restored, box, out)
    assert got is out
    np.testing.assert_array_equal(out, colorize(restored, lut))
