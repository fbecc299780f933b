"""MFARANet: fidelity to the official model, shapes, counts, gradients, checkpoints."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mfaranet_ros.model import (
    CheckpointError,
    MFARANet,
    ModelMetadata,
    cityscapes_metadata,
    load_backbone,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from mfaranet_ros.model.checkpoint import load_state_dict_strict


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def golden(reference_dir):
    return torch.load(reference_dir / "golden_io.pt", weights_only=True)


def test_reproduces_official_outputs(official_checkpoint, golden):
    model = load_checkpoint(official_checkpoint)
    assert not model.training
    with torch.inference_mode():
        for x, expected in zip(golden["inputs"], golden["outputs"]):
            out = model(x)
            assert out.shape == expected.shape
            diff = (out - expected).abs().max().item()
            assert diff < 1e-4, f"max abs diff {diff} for input {tuple(x.shape)}"


def test_pruned_is_branch_two_of_full_graph(official_checkpoint, golden):
    full = load_checkpoint(official_checkpoint)
    pruned = load_checkpoint(official_checkpoint, pruned=True)
    # The smaller graph really is smaller: no attention, no coarse bottom-up/merge, one flow.
    assert pruned.fusion is None and pruned.boundary is None
    assert set(pruned.alignment.flows) == {"s1"}
    assert set(pruned.aggregation.bottom_up) == {"s2"}
    assert _params(pruned) < _params(full) - 300_000
    # And it computes exactly S_2 of the full model, upsampled.
    x = golden["inputs"][0]
    captured = {}
    full.heads.register_forward_hook(lambda m, i, o: captured.setdefault("scores", o))
    with torch.inference_mode():
        full(x)
        expected = torch.nn.functional.interpolate(
            captured["scores"][1], size=x.shape[-2:], mode="bilinear", align_corners=True)
        assert torch.allclose(pruned(x), expected, atol=1e-5)


def test_parameter_counts():
    assert _params(MFARANet(19)) == 12_997_264
    assert _params(MFARANet(19, boundary_heads=False)) == 12_996_748


def test_conv_macs_at_full_resolution():
    model = MFARANet(19).eval()
    with torch.device("meta"):
        x = torch.empty(1, 3, 1024, 2048)
    model = model.to("meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    conv_macs = sum(v for op, v in counter.get_flop_counts()["Global"].items()
                    if "convolution" in str(op)) / 2
    assert abs(conv_macs / 218e9 - 1) < 0.03, f"{conv_macs / 1e9:.1f} G MACs"


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (3, 3, 64, 96), (2, 3, 100, 150)])
def test_any_size_and_batch(shape):
    torch.manual_seed(0)
    model = MFARANet(5).eval()
    with torch.inference_mode():
        out = model(torch.randn(shape))
    assert out.shape == (shape[0], 5, shape[2], shape[3])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("bad", [(1, 4, 32, 32), (3, 32, 32), (1, 1, 3, 32, 32)])
def test_wrong_input_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"expects a \(B, 3, H, W\) tensor"):
        MFARANet(19).eval()(torch.randn(bad))


def test_batch_items_are_independent():
    torch.manual_seed(1)
    model = MFARANet(4).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        both = model(x)
        one = model(x[1:])
    assert torch.allclose(both[1:], one, atol=1e-5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = MFARANet(19).train()
    out = model(torch.randn(2, 3, 64, 96))
    assert out["out"].shape == (2, 19, 64, 96)
    assert len(out["scales"]) == 4 and len(out["boundaries"]) == 4
    loss = out["out"].square().mean() + sum(b.mean() for b in out["boundaries"])
    loss = loss + sum(s.mean() for s in out["scales"])
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_project_round_trip_keeps_outputs_and_metadata(tmp_path):
    torch.manual_seed(3)
    model = MFARANet(19).eval()
    meta = cityscapes_metadata(source="unit test", input_size=[256, 512], metrics={"miou": 0.5})
    path = tmp_path / "m.pth"
    save_checkpoint(path, model, meta)
    loaded, meta2 = load_checkpoint(path, return_metadata=True)
    x = torch.randn(1, 3, 48, 80)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))
    assert meta2 == meta


def test_official_checkpoint_keys_all_consumed(official_checkpoint):
    ckpt = read_checkpoint(official_checkpoint)
    assert ckpt.kind == "official" and ckpt.extra["epoch"] == 200
    raw = torch.load(official_checkpoint, weights_only=True)["state_dict"]
    assert len(ckpt.state_dict) == len(raw) == 263
    assert set(ckpt.state_dict) == set(MFARANet(19).state_dict())


def test_import_official_cli(official_checkpoint, golden, tmp_path):
    from mfaranet_ros.cli import main

    dst = tmp_path / "cityscapes.pth"
    assert main(["import-official", str(official_checkpoint), str(dst)]) == 0
    model, meta = load_checkpoint(dst, return_metadata=True)
    assert meta.num_classes == 19 and meta.class_names[0] == "road"
    assert "official" in meta.source
    with torch.inference_mode():
        diff = (model(golden["inputs"][2]) - golden["outputs"][2]).abs().max().item()
    assert diff < 1e-4


def test_mismatch_lists_missing_unexpected_misshaped(tmp_path):
    model = MFARANet(19)
    state = model.state_dict()
    state.pop("encoder.bn1.weight")
    state["extra.weight"] = torch.zeros(1)
    state["heads.classifiers.s1.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(MFARANet(19), state)
    text = str(info.value)
    assert "missing (1): encoder.bn1.weight" in text
    assert "unexpected (1): extra.weight" in text
    assert "heads.classifiers.s1.bias: file (7,) vs model (19,)" in text


def test_class_count_mismatch_is_refused(tmp_path):
    model = MFARANet(11)
    meta = cityscapes_metadata()  # 19 names for an 11-class model
    path = tmp_path / "bad.pth"
    save_checkpoint(path, model, meta)
    with pytest.raises(CheckpointError, match="19 classes but the classifier weights have 11"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_garbage_files_give_clear_errors(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_truncated_checkpoint(tiny_checkpoint, tmp_path):
    data = tiny_checkpoint.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pth")


def test_fp16_storage_loads(tmp_path):
    torch.manual_seed(0)
    model = MFARANet(3).eval()
    path = tmp_path / "half.pth"
    meta = ModelMetadata(class_names=["a", "b", "c"], palette=[[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    save_checkpoint(path, model, meta, half=True)
    loaded = load_checkpoint(path)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        assert (loaded(x) - model(x)).abs().max() < 0.05


def test_imagenet_backbone_file_loads_into_encoder(tmp_path):
    # The deep-stem ImageNet file's layout: conv1.0/1/3/4/6, bn1, layer1..4, fc.
    torch.manual_seed(0)
    donor = MFARANet(19).encoder
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in donor.state_dict().items()}
    state["fc.weight"] = torch.randn(1000, 512)
    state["fc.bias"] = torch.randn(1000)
    assert {k.split(".")[0] for k in state} == {"conv1", "bn1", "layer1", "layer2", "layer3",
                                                "layer4", "fc"}
    assert {k for k in state if k.startswith("conv1.")} >= {"conv1.0.weight", "conv1.1.weight",
                                                            "conv1.3.weight", "conv1.4.weight",
                                                            "conv1.6.weight"}
    path = tmp_path / "resnet18-deep-inplane128.pth"
    torch.save(state, path)
    model = MFARANet(19)
    load_backbone(model, path)
    assert torch.equal(model.encoder.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    state.pop("layer2.0.bn1.weight")
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="layer2.0.bn1.weight"):
        load_backbone(MFARANet(19), path)


def test_metadata_validation():
    with pytest.raises(ValueError, match="palette has 1 colours for 2 classes"):
        ModelMetadata(class_names=["a", "b"], palette=[[0, 0, 0]])
    with pytest.raises(ValueError, match="std must be positive"):
        ModelMetadata(class_names=["a"], palette=[[0, 0, 0]], std=[1, 0, 1])


def test_cityscapes_table_matches_cityscapesscripts():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    from mfaranet_ros.model import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

    train = sorted((lab.trainId, lab.name, lab.color) for lab in labels.labels
                   if 0 <= lab.trainId < 255 and not lab.ignoreInEval)
    assert [n for _, n, _ in train] == list(CITYSCAPES_CLASSES)
    assert [tuple(c) for _, _, c in train] == list(CITYSCAPES_PALETTE)


def test_official_state_dict_without_module_prefix(official_checkpoint, golden, tmp_path):
    # A checkpoint saved from the bare (non-DDP) official model has no "module." prefix.
    raw = torch.load(official_checkpoint, weights_only=True)["state_dict"]
    bare = {k[len("module."):]: v for k, v in raw.items()}
    path = tmp_path / "bare.pth"
    torch.save({"epoch": 1, "state_dict": bare}, path)
    model = load_checkpoint(path)
    with torch.inference_mode():
        diff = (model(golden["inputs"][1]) - golden["outputs"][1]).abs().max().item()
    assert diff < 1e-4
