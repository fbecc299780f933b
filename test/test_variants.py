"""MFARANet's parts as switches: every variant builds, runs, saves, loads and exports."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from inference_frames import scene

from mfaranet_ros.model import (
    CheckpointError,
    MFARANet,
    ModelMetadata,
    cityscapes_metadata,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from mfaranet_ros.model.variants import PAPER, Architecture

#: One variant per alternative of each part, the paper's model first.
VARIANTS = [
    PAPER,
    Architecture(aggregation="fpn"),
    Architecture(aggregation="none"),
    Architecture(alignment="direct"),
    Architecture(alignment="bilinear"),
    Architecture(fusion="mean"),
    Architecture(fusion="max"),
    Architecture(fusion="concat"),
    Architecture(fusion="s1"),
    Architecture(fusion="s2"),
    Architecture(fusion="s3"),
    Architecture(fusion="s4"),
    Architecture(backbone="resnet50"),
    Architecture(aggregation="fpn", alignment="direct", fusion="s3"),
]
IDS = [a.name for a in VARIANTS]
#: Exported to ONNX and compared with eager: every alternative of every part at least once,
#: combined (an export costs 10-40 s here). The paper's model, whose export the backend
#: tests check, and s2 (the pruned model: test_backends) are left out.
EXPORTED = [
    Architecture(aggregation="fpn", alignment="direct", fusion="max"),
    Architecture(aggregation="none", alignment="bilinear", fusion="mean"),
    Architecture(fusion="concat"),
    Architecture(backbone="resnet50", fusion="s1"),
    Architecture(aggregation="fpn", alignment="direct", fusion="s3"),
    Architecture(fusion="s4"),
]


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def vary_classifiers(model: MFARANet, x: torch.Tensor, seed: int = 0) -> None:
    """Re-draws the final 1x1 classifiers on standardised inputs so that a randomly
    initialised variant predicts 15-19 classes per frame with many close calls: a parity
    check on a model that predicts one class everywhere would prove nothing."""
    convs = {n: m for n, m in model.named_modules()
             if n.startswith(("heads.classifiers.", "fusion.classifier"))}
    captured = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: captured.__setitem__(n, inp[0]))
             for n, m in convs.items()]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, conv in convs.items():
            feat = captured[name]
            mu, sd = feat.mean((0, 2, 3)), feat.std((0, 2, 3)) + 1e-3
            w = torch.randn(conv.weight.shape[:2], generator=gen) / sd
            conv.weight.copy_(w[:, :, None, None])
            conv.bias.copy_(-(w @ mu))


def _normalised(frame: np.ndarray, meta: ModelMetadata) -> torch.Tensor:
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    return (torch.from_numpy(frame).permute(2, 0, 1)[None].float() - mean) / std


def _variant_checkpoint(arch: Architecture, path) -> None:
    torch.manual_seed(0)
    meta = cityscapes_metadata(source=f"test: random {arch.name}")
    model = MFARANet(19, architecture=arch)
    vary_classifiers(model, _normalised(scene(64, 128, 99), meta))
    save_checkpoint(path, model, meta)


class _Checkpoints(dict):
    """``checkpoints[name]``: the variant's seeded checkpoint, written on first use."""

    def __init__(self, root) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, name: str):
        arch = next(a for a in VARIANTS + EXPORTED if a.name == name)
        path = self[name] = self.root / f"{name}.pth"
        _variant_checkpoint(arch, path)
        return path


@pytest.fixture(scope="module")
def variant_checkpoints(tmp_path_factory):
    return _Checkpoints(tmp_path_factory.mktemp("variants"))


# ------------------------------------------------------------------------ the parts

def test_paper_is_the_default_and_parts_are_validated():
    assert MFARANet(19).architecture == PAPER == Architecture.from_dict({})
    assert PAPER.name == "r18-mfam-ram-asfm" and PAPER.is_paper
    with pytest.raises(ValueError, match=r"fusion 'softmax' is unknown; use one of asfm"):
        Architecture(fusion="softmax")
    with pytest.raises(ValueError, match=r"unknown parts \['head'\]"):
        Architecture.from_dict({"head": "x"})
    with pytest.raises(ValueError, match="only branch 3"):
        Architecture(fusion="s3").pruned()
    assert Architecture(fusion="mean").pruned().fusion == "s2"


@pytest.mark.slow
@pytest.mark.parametrize("arch", VARIANTS, ids=IDS)
def test_variant_runs_at_two_sizes_and_trains_every_parameter(arch):
    torch.manual_seed(0)
    model = MFARANet(5, architecture=arch).eval()
    with torch.inference_mode():
        for shape in ((1, 3, 37, 53), (2, 3, 64, 96)):
            out = model(torch.randn(shape))
            assert out.shape == (shape[0], 5, *shape[2:]) and torch.isfinite(out).all()
    model.train()
    out = model(torch.randn(2, 3, 48, 64))
    assert len(out["scales"]) == len(arch.scales) == len(out["boundaries"])
    loss = out["out"].square().mean() + sum(s.mean() for s in out["scales"])
    (loss + sum(b.mean() for b in out["boundaries"])).backward()
    # every parameter takes part (DDP needs that), and only the parts needed are built
    assert not [n for n, p in model.named_parameters() if p.grad is None]


def test_parts_change_what_is_built():
    full = _params(MFARANet(19))
    assert _params(MFARANet(19, architecture={"aggregation": "fpn"})) < full
    assert _params(MFARANet(19, architecture={"aggregation": "none"})) < _params(
        MFARANet(19, architecture={"aggregation": "fpn"}))
    assert not any(True for _ in MFARANet(19, architecture={"alignment": "bilinear"})
                   .alignment.parameters())
    direct = MFARANet(19, architecture={"alignment": "direct"})
    assert set(direct.alignment.flows) == {"s2", "s3", "s4"}
    assert _params(MFARANet(19, architecture={"fusion": "mean"})) < full
    assert MFARANet(19, architecture={"fusion": "max"}).fusion is not None
    single = MFARANet(19, architecture={"fusion": "s2"})
    pruned = MFARANet(19, pruned=True)
    # one scale alone (trained so) builds the graph MFARANet-Pruned reads the full weights with
    assert set(single.state_dict()) - set(pruned.state_dict()) == {
        k for k in single.state_dict() if k.startswith("boundary.")}
    r50 = MFARANet(19, architecture={"backbone": "resnet50"})
    assert r50.encoder.channels == (256, 512, 1024, 2048) and _params(r50) > 2 * full - 3e6


@pytest.mark.slow
def test_resnet101_builds_and_runs():
    model = MFARANet(3, architecture={"backbone": "resnet101"}).eval()
    assert len(model.encoder.layer3) == 23
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 32, 48)).shape == (1, 3, 32, 48)


def test_unknown_part_in_the_model_is_a_clear_error():
    with pytest.raises(ValueError, match="alignment 'warp' is unknown"):
        MFARANet(19, architecture={"alignment": "warp"})


# ------------------------------------------------------------------ metadata, checkpoints

def test_metadata_round_trip_and_old_files():
    meta = cityscapes_metadata(architecture={"fusion": "max"})
    assert meta.architecture == {**PAPER.to_dict(), "fusion": "max"}
    again = ModelMetadata.from_dict(json.loads(json.dumps(meta.to_dict())))
    assert again == meta and again.model_architecture() == Architecture(fusion="max")
    old = meta.to_dict()
    del old["architecture"]     # a file written before the parts were switches
    assert ModelMetadata.from_dict(old).model_architecture() == PAPER
    with pytest.raises(ValueError, match="metadata: architecture: backbone 'vgg'"):
        cityscapes_metadata(architecture={"backbone": "vgg"})


@pytest.mark.slow
@pytest.mark.parametrize("arch", VARIANTS, ids=IDS)
def test_checkpoint_knows_its_variant(variant_checkpoints, arch):
    path = variant_checkpoints[arch.name]
    assert read_checkpoint(path).metadata.model_architecture() == arch
    model = load_checkpoint(path)             # no option: the file says what it is
    assert model.architecture == arch
    torch.manual_seed(1)
    x = torch.randn(1, 3, 40, 72)
    torch.manual_seed(0)
    fresh = MFARANet(19, architecture=arch)
    vary_classifiers(fresh, _normalised(scene(64, 128, 99), cityscapes_metadata()))
    with torch.inference_mode():
        torch.testing.assert_close(model(x), fresh.eval()(x), atol=1e-5, rtol=1e-5)


def test_saved_architecture_is_the_models_own(tmp_path):
    """Metadata that says otherwise (a recipe's default) cannot mislabel the weights."""
    path = tmp_path / "fpn.pth"
    save_checkpoint(path, MFARANet(19, architecture={"aggregation": "fpn"}), cityscapes_metadata())
    assert read_checkpoint(path).metadata.architecture["aggregation"] == "fpn"


@pytest.mark.slow
def test_pruned_reads_any_four_scale_variant(variant_checkpoints):
    for name in ("r18-mfam-ram-mean", "r18-fpn-ram-asfm", "r18-mfam-direct-asfm"):
        full = load_checkpoint(variant_checkpoints[name])
        pruned = load_checkpoint(variant_checkpoints[name], pruned=True)
        assert pruned.fusion is None and len(pruned.heads.scales) == 1
        x = torch.randn(1, 3, 64, 64)
        with torch.inference_mode():
            scores = full.heads(full.alignment(full.aggregation(full.encoder(x))))
            expected = torch.nn.functional.interpolate(
                scores[1], size=(64, 64), mode="bilinear", align_corners=True)
            torch.testing.assert_close(pruned(x), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(CheckpointError, match="only branch 3; load it without pruned"):
        load_checkpoint(variant_checkpoints["r18-mfam-ram-s3"], pruned=True)


# ------------------------------------------------------------------- through the Segmenter

def _eager(path, frames):
    model, meta = load_checkpoint(path, return_metadata=True)
    out = []
    with torch.inference_mode():
        for f in frames:
            logits = model(_normalised(f, meta))
            out.append((logits.argmax(1)[0].numpy().astype(np.uint8),
                        torch.softmax(logits, 1).amax(1)[0].numpy()))
    return out


def test_variant_loads_in_the_segmenter_with_no_option(variant_checkpoints, tmp_path):
    from mfaranet_ros.inference import Segmenter

    path = variant_checkpoints["r18-fpn-direct-s3"]
    frames = [scene(64, 128, 11), scene(64, 128, 12)]
    seg = Segmenter.from_checkpoint(path, backend="torch", device="cpu", input_size=None,
                                    cache_dir=tmp_path)
    labels = [r.labels for r in seg.segment_batch(frames, color=False, overlay=False)]
    ref = _eager(path, frames)
    assert all(len(np.unique(r[0])) >= 10 for r in ref)
    agree = np.mean([(a == r[0]).mean() for a, r in zip(labels, ref)])
    assert agree >= 0.999


def test_the_exported_variants_cover_every_alternative():
    for part in ("backbone", "aggregation", "alignment", "fusion"):
        left = ({getattr(a, part) for a in VARIANTS}
                - {getattr(a, part) for a in EXPORTED} - {PAPER.fusion, "s2"})
        assert not left, f"{part}: {sorted(left)} never exported"


@pytest.mark.slow
@pytest.mark.parametrize("arch", EXPORTED, ids=[a.name for a in EXPORTED])
def test_variant_onnx_export_matches_eager(variant_checkpoints, tmp_path, arch):
    """The default model's ONNX Runtime tolerance (test_backends): >= 99.9 % identical
    labels, confidence within 1e-4; the exported file names its variant."""
    import onnx

    from mfaranet_ros.inference import Segmenter

    path = variant_checkpoints[arch.name]
    frames = [scene(64, 128, 11), scene(64, 128, 12)]
    seg = Segmenter.from_checkpoint(path, backend="onnxruntime", input_size=None,
                                    cache_dir=tmp_path)
    results = seg.segment_batch(frames, color=False, overlay=False, confidence=True)
    ref = _eager(path, frames)
    # the 1/32 branch alone is coarse: fewer classes on a 64x128 frame
    assert all(len(np.unique(r[0])) >= (4 if arch.fusion == "s4" else 10) for r in ref)
    agree = np.mean([(res.labels == r[0]).mean() for res, r in zip(results, ref)])
    assert agree >= 0.999, f"{arch.name}: {agree:.5f} identical labels"
    for res, r in zip(results, ref):
        np.testing.assert_allclose(res.confidence, r[1], atol=1e-4)
    (onnx_path,) = seg.backend.artifacts().values()
    props = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    assert json.loads(props["mfaranet_ros.metadata"])["architecture"] == arch.to_dict()


@pytest.mark.slow
def test_variant_runs_in_openvino_with_no_option(variant_checkpoints, tmp_path):
    """OpenVINO (and with it the int8 paths) builds from the same export: the variant
    comes from the checkpoint, not from an option."""
    pytest.importorskip("openvino", reason="needs openvino (requirements-test.txt)")
    from mfaranet_ros.inference.backends import ModelSource, create_backend
    from mfaranet_ros.inference.cache import resolve_cache_dir

    path = variant_checkpoints["r18-fpn-direct-s3"]
    frames = [scene(64, 128, 11), scene(64, 128, 12)]
    backend = create_backend("openvino", ModelSource(path), precision="fp32",
                             cache=resolve_cache_dir(tmp_path))
    labels, _ = backend.run(np.stack(frames))
    ref = _eager(path, frames)
    assert np.mean([(a == r[0]).mean() for a, r in zip(labels, ref)]) >= 0.999


def test_info_names_the_variant(tmp_path, capsys):
    from mfaranet_ros.cli import main

    path = tmp_path / "bilinear.pth"
    save_checkpoint(path, MFARANet(19, architecture={"alignment": "bilinear"}),
                    cityscapes_metadata())
    assert main(["info", str(path)]) == 0
    assert "variant:     r18-mfam-bilinear-asfm\n" in capsys.readouterr().out
