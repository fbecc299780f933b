"""The training loop: learning, exact resume, a two-process DDP step, the demo weights."""
from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mfaranet_ros.model import MFARANet
from mfaranet_ros.training import (
    ConfigError,
    GeneratedDataset,
    MJSLoss,
    TrainConfig,
    TrainTransform,
    build_optimizer,
    config_from_dict,
    load_config,
    poly_lr,
    train,
)
from mfaranet_ros.training.config import OptimConfig, parse_override

REPO = Path(__file__).resolve().parents[1]
DEMO_WEIGHTS = REPO / "models" / "mfaranet_synthetic.pth"


@pytest.fixture(autouse=True)
def _one_thread():
    """The 2 CPU cores are shared: one OpenMP thread avoids threads waiting on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny_config(out_dir, **train):
    return config_from_dict({
        "output_dir": str(out_dir), "seed": 3, "device": "cpu",
        "data": {"type": "generated", "train": {"frames": 6, "size": [32, 64], "seed": 11},
                 "val": None},
        "augment": {"crop_size": [32, 64]},
        "loss": {"min_kept": 1000},
        "optim": {"base_lr": 0.01},
        "train": {"batch_size": 2, "iterations": 3, "workers": 0, "val_every": 0, "threads": 1,
                  "checkpoint_every": 1, "log_every": 1, "progress": False, **train},
    })


def _log(out_dir):
    with open(os.path.join(out_dir, "log.csv")) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", ["train_synthetic", "train_cityscapes", "train_camvid"])
def test_shipped_recipes_load_as_typed_configs(name):
    cfg = load_config(str(REPO / "config" / f"{name}.yaml"))
    assert isinstance(cfg, TrainConfig) and cfg.output_dir == f"out/{name}"
    assert len(cfg.augment.crop_size) == 2 and cfg.optim.momentum == 0.9
    if name == "train_synthetic":
        assert cfg.augment.base_size == (256, 512) and cfg.eval.input_size == (256, 512)
        assert cfg.data.type == "folder" and cfg.data.train == "out/synth/train"
        assert cfg.train.batch_size == 2 and cfg.train.channels_last is True
        assert cfg.loss.min_kept == 100_000 and cfg.optim.weight_decay == 0.0005


def _write_recipe(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def test_config_overrides_set_nested_values_and_keep_the_rest(tmp_path):
    recipe = _write_recipe(tmp_path, "data:\n  train: {frames: 4, size: [32, 64]}\n"
                                     "optim:\n  base_lr: 0.01\n")
    overrides = [parse_override(s) for s in (
        "optim.base_lr=0.0025", "data.train.frames=9", "optim.weight_decay=5e-4",
        "eval.input_size=[64, 128]", "augment.base_size=null")]
    cfg = load_config(recipe, overrides)
    assert cfg.optim.base_lr == 0.0025 and cfg.optim.head_lr_mult == 10.0
    assert cfg.data.train.frames == 9 and cfg.data.train.size == (32, 64)
    assert cfg.optim.weight_decay == 5e-4  # YAML 1.1 reads 5e-4 as text: still a float
    assert cfg.eval.input_size == (64, 128) and cfg.augment.base_size is None
    assert load_config(recipe).optim.base_lr == 0.01, "the recipe itself is unchanged"


@pytest.mark.parametrize("recipe, overrides, message", [
    ("train: {batchsize: 2}\n", [],
     r"unknown config key 'train\.batchsize'; train has: batch_size"),
    ("", ["optim.lr=0.1"], r"unknown config key 'optim\.lr'; optim has: base_lr"),
    ("", ["train.batch_size.x=1"], r"'train\.batch_size' is not a config section"),
    ("", ["train.batch_size=four"], r"train\.batch_size: expected int, got str 'four'"),
    ("", ["train.iterations=1.5"], r"train\.iterations: expected int, got float 1\.5"),
    ("", ["train.amp=1"], r"train\.amp: expected bool, got int 1"),
    ("", ["augment.crop_size=[32, 64, 3]"], r"augment\.crop_size: expected 2 values"),
    ("", ["device=gpu"], r"device 'gpu' is unknown"),
    ("data: {type: kitti}\n", [], r"data\.type 'kitti' is unknown"),
    ("optim: 0.1\n", [], r"optim: expected a mapping"),
])
def test_config_errors_name_the_key(tmp_path, recipe, overrides, message):
    path = _write_recipe(tmp_path, recipe)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path, [parse_override(s) for s in overrides])
    assert "\n" not in str(info.value)


def test_train_command_refuses_a_bad_recipe_in_one_line(tmp_path, capsys):
    from mfaranet_ros.cli import main

    path = _write_recipe(tmp_path, "train: {batch_size: 2}\n")
    assert main(["train", "--config", path, "--set", "loss.ohem=0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "'loss.ohem'" in err and "\n" not in err, err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the recipe" in capsys.readouterr().err


def test_a_few_iterations_on_generated_data_lower_the_loss():
    torch.manual_seed(0)
    ds = GeneratedDataset(2, (32, 64), seed=2, transform=TrainTransform(crop_size=(32, 64)))
    items = [ds[(i, 5 + i)] for i in range(2)]
    images, labels, edges = (torch.stack(t) for t in zip(*items))
    model = MFARANet(19).train()
    optimizer = build_optimizer(model, OptimConfig(base_lr=0.01))
    criterion = MJSLoss(min_kept=1000)
    losses = []
    for _ in range(4):
        loss, _ = criterion(model(images), labels, edges)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_optimizer_groups_and_poly_schedule():
    model = MFARANet(19)
    opt = build_optimizer(model, TrainConfig().optim)
    backbone, new = opt.param_groups
    assert backbone["lr"] == 0.005 and new["lr"] == pytest.approx(0.05)
    assert (sum(p.numel() for p in backbone["params"])
            == sum(p.numel() for p in model.encoder.parameters()))
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 5e-4
    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5 ** 0.9)


def test_resume_continues_exactly(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(_tiny_config(straight))
    train(_tiny_config(split), stop_at=2)
    assert [r["iteration"] for r in _log(split)] == ["1", "2"]
    with open(split / "log.csv", "a") as f:  # as if killed after logging past its checkpoint
        f.write("3,0.001,9.9,,,,,,\n")
    train(_tiny_config(split))  # resumes from split/last.pth at iteration 2
    a, b = _log(straight), _log(split)
    assert [r["iteration"] for r in b] == ["1", "2", "3"]
    assert a[2]["loss"] == b[2]["loss"], "the batch after resume must give the same loss"
    wa = torch.load(straight / "last.pth", weights_only=True)["state_dict"]
    wb = torch.load(split / "last.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_training_can_start_from_whole_model_weights(tmp_path):
    from mfaranet_ros.model import (
        CheckpointError,
        ModelMetadata,
        cityscapes_metadata,
        save_checkpoint,
    )

    torch.manual_seed(5)
    donor = MFARANet(19, boundary_heads=False)
    init = tmp_path / "init.pth"
    save_checkpoint(init, donor, cityscapes_metadata(source="donor"), half=True)
    cfg = _tiny_config(tmp_path / "run", iterations=1)
    cfg.model.init_weights = str(init)
    cfg.optim.base_lr = 0.0  # no step size: the weights stay the donor's
    cfg.optim.weight_decay = 0.0
    _, model = train(cfg, return_model=True)
    own = model.state_dict()
    for key, value in donor.state_dict().items():
        if value.is_floating_point() and "running" not in key:
            assert torch.equal(own[key], value.half().float()), key
    assert any(k.startswith("boundary.") for k in own), "training keeps its boundary heads"

    wrong = tmp_path / "wrong.pth"
    save_checkpoint(wrong, MFARANet(11), ModelMetadata(class_names=[f"c{i}" for i in range(11)],
                                                       palette=[[i, i, i] for i in range(11)]))
    cfg = _tiny_config(tmp_path / "run2", iterations=1)
    cfg.model.init_weights = str(wrong)
    with pytest.raises(CheckpointError, match="mis-shaped"):
        train(cfg)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir, result_dir):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    metrics, model = train(_tiny_config(out_dir, iterations=1), return_model=True)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    np.save(os.path.join(result_dir, f"rank{rank}.npy"),
            np.array([float((gathered[0] - g).abs().max()) for g in gathered]))
    dist.destroy_process_group()


def test_two_cpu_processes_run_a_ddp_step(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "run"), str(tmp_path)), nprocs=2)
    for rank in range(2):
        diffs = np.load(tmp_path / f"rank{rank}.npy")
        assert (diffs == 0).all(), "DDP replicas must hold identical weights after a step"
    assert (tmp_path / "run" / "last.pth").is_file()
    assert [r["iteration"] for r in _log(tmp_path / "run")] == ["1"]


@pytest.mark.skipif(not DEMO_WEIGHTS.is_file(),
                    reason="models/mfaranet_synthetic.pth not trained yet")
def test_demo_weights_need_rgb_input():
    from mfaranet_ros.evaluation.weights_eval import confusion_over_pairs, generated_pairs
    from mfaranet_ros.inference import Segmenter
    from mfaranet_ros.model import read_checkpoint

    meta = read_checkpoint(DEMO_WEIGHTS).metadata
    assert meta.num_classes == 19 and meta.input_size and "heldout_miou" in meta.metrics
    seg = Segmenter.from_checkpoint(DEMO_WEIGHTS, backend="torch", device="cpu",
                                    input_size=meta.input_size)
    frames = list(generated_pairs(3, (256, 512), seed=4242))  # at the input size: no resize
    miou_rgb = confusion_over_pairs(seg, frames).miou()
    miou_bgr = confusion_over_pairs(seg, frames, bgr=True).miou()
    assert miou_rgb > miou_bgr + 0.1, (miou_rgb, miou_bgr)


def test_eval_weights_command_through_the_segmenter(tmp_path, capsys, tiny_checkpoint):
    """``eval-weights``: the Segmenter's labels, scored by the one metric."""
    from mfaranet_ros.cli import main
    from mfaranet_ros.evaluation.metrics import ConfusionMatrix
    from mfaranet_ros.evaluation.weights_eval import generated_pairs
    from mfaranet_ros.inference import Segmenter

    rc = main(["eval-weights", str(tiny_checkpoint), "--frames", "2", "--size", "64x128",
               "--seed", "5", "--input-size", "32x64", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    seg = Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", input_size=(32, 64))
    cm = ConfusionMatrix(19)
    for rgb, label in generated_pairs(2, (64, 128), 5):
        cm.update(seg.segment(rgb, color=False, overlay=False).labels, label)
    assert report["miou"] == pytest.approx(cm.miou(), abs=1e-12)
    assert report["input_size"] == [32, 64] and report["input_size_reason"] == "32x64, requested"
    assert report["classes_in_mean"] == int((~np.isnan(cm.iou())).sum())
    # No size recorded in the checkpoint: the default runs at full resolution, and says so.
    assert main(["eval-weights", str(tiny_checkpoint), "--frames", "1", "--size", "64x128",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_size"] is None and "records no input size" in report["input_size_reason"]


def test_eval_weights_checks_the_data_folder_before_the_model(tmp_path, capsys):
    from mfaranet_ros.cli import main

    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a checkpoint")
    rc = main(["eval-weights", str(bogus), "--data", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 2 and "no images in" in err and "checkpoint" not in err, err


@pytest.mark.parametrize("frame_size", [(96, 128), (128, 128), (64, 128)])
def test_validation_labels_are_the_segmenters_also_for_another_aspect_ratio(frame_size):
    """Training's validation runs the Segmenter's letterbox, normalisation and restore: its
    labels equal the Segmenter's on the same (demo) weights, exactly, for frames whose
    aspect ratio is not the network input's (96x128 and 128x128 into 64x128) and for one
    that is. (Stretching the frame instead, as validation once did, changes labels.)"""
    from mfaranet_ros.inference import Segmenter
    from mfaranet_ros.model import load_checkpoint
    from mfaranet_ros.synthetic import generate_scene
    from mfaranet_ros.training.metrics import predict_labels

    model, meta = load_checkpoint(DEMO_WEIGHTS, return_metadata=True)
    model.eval()
    seg = Segmenter.from_checkpoint(DEMO_WEIGHTS, backend="torch", device="cpu",
                                    input_size=(64, 128))
    rgb, _ = generate_scene(7, size=frame_size)
    ours = predict_labels(model, rgb, (64, 128), meta.mean, meta.std)
    assert ours.shape == frame_size and len(np.unique(ours)) > 3
    np.testing.assert_array_equal(ours, seg.segment(rgb).labels)
