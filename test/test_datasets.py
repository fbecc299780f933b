"""Dataset readers on tiny Cityscapes / CamVid / folder layouts, transforms, batch order."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mfaranet_ros.training.datasets import (
    CamVidDataset,
    CityscapesDataset,
    FolderDataset,
    GeneratedDataset,
    SeededBatches,
)
from mfaranet_ros.training.transforms import TrainTransform, boundary_target


def _write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_label(path, label):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), label)


def _image(h=8, w=12):
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = 200  # red: a channel swap would show
    rgb[..., 2] = 10
    return rgb


def test_cityscapes_layout_maps_label_ids_to_train_ids(tmp_path):
    # labelIds 7 road, 26 car, 0 unlabeled, 9 parking (ignored in trainIds), 33 bicycle
    ids = np.array([[7, 26, 0, 9, 33, 8]], np.uint8).repeat(4, 0)
    for city, stem in (("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")):
        _write_rgb(tmp_path / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png",
                   _image(4, 6))
        _write_label(tmp_path / "gtFine" / "train" / city / f"{stem}_gtFine_labelIds.png", ids)
    ds = CityscapesDataset(str(tmp_path), "train")
    assert len(ds) == 2
    rgb, label = ds.load(1)
    assert rgb.shape == (4, 6, 3) and tuple(rgb[0, 0]) == (200, 0, 10)
    assert label[0].tolist() == [0, 13, 255, 255, 18, 1]
    image, target = ds[0]
    assert image.shape == (3, 4, 6) and target.dtype == torch.int64


def test_cityscapes_missing_label_is_reported(tmp_path):
    _write_rgb(tmp_path / "leftImg8bit" / "val" / "lindau"
               / "lindau_000000_000019_leftImg8bit.png", _image())
    with pytest.raises(FileNotFoundError, match="gtFine_labelIds"):
        CityscapesDataset(str(tmp_path), "val")


def test_camvid_layout_eleven_classes_void_ignored(tmp_path):
    for split in ("train", "val"):
        _write_rgb(tmp_path / split / f"{split}_0001.png", _image(4, 6))
        _write_label(tmp_path / f"{split}annot" / f"{split}_0001.png",
                     np.array([[0, 3, 10, 11, 5, 8]], np.uint8).repeat(4, 0))
    ds = CamVidDataset(str(tmp_path), "train+val")
    assert len(ds) == 2
    assert ds.load(0)[1][0].tolist() == [0, 3, 10, 255, 5, 8]


def test_folder_dataset_and_generated_dataset_agree(tmp_path):
    from mfaranet_ros.cli import main as cli_main

    cli_main(["synth", str(tmp_path), "--frames", "2", "--size", "32x64", "--seed", "4",
              "--quiet"])
    folder = FolderDataset(str(tmp_path))
    generated = GeneratedDataset(2, (32, 64), seed=4)
    for i in range(2):
        for a, b in zip(folder.load(i), generated.load(i)):
            assert np.array_equal(a, b)


def test_boundary_target_is_a_band_around_label_changes():
    label = np.zeros((10, 10), np.uint8)
    label[:, 5:] = 1
    edge = boundary_target(label)
    # a 5x5 box mixes classes within 2 px of the change at column 4.5
    assert edge[:, 3:7].all() and not edge[:, :3].any() and not edge[:, 7:].any()
    label[0, 0] = 255  # edges against ignore count too
    assert boundary_target(label)[1, 1] == 1


def test_train_transform_shapes_padding_and_determinism():
    rgb = np.full((20, 30, 3), 100, np.uint8)
    label = np.ones((20, 30), np.uint8)
    t = TrainTransform(crop_size=(64, 64), scale_range=(1.0, 1.0), rotate_p=0.0)
    image, target, edge = t(rgb, label, np.random.default_rng(0))
    assert image.shape == (3, 64, 64) and target.shape == (64, 64) and edge.shape == (1, 64, 64)
    assert (target == 255).sum() == 64 * 64 - 20 * 30, "padding is ignore"
    a = TrainTransform(crop_size=(16, 16))(rgb, label, np.random.default_rng(3))
    b = TrainTransform(crop_size=(16, 16))(rgb, label, np.random.default_rng(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_class_uniform_crop_finds_a_rare_class():
    # a 200x300 frame that is all road but for one 2x3 pole-class patch in a corner
    rgb = np.full((200, 300, 3), 90, np.uint8)
    label = np.zeros((200, 300), np.uint8)
    label[180:182, 10:13] = 5
    label[:4] = 255  # ignore pixels are never the chosen class
    kw = dict(crop_size=(32, 32), scale_range=(1.0, 1.0), rotate_p=0.0, flip_p=0.0)
    plain, uniform = TrainTransform(**kw), TrainTransform(class_uniform_p=1.0, **kw)
    rng = np.random.default_rng(0)
    hits_plain = sum(int((plain(rgb, label, rng)[1] == 5).any()) for _ in range(200))
    hits_uniform = [(uniform(rgb, label, rng)[1] == 5).sum().item() for _ in range(200)]
    # uniform over {road, pole}: about half the crops hold (some of) the pole
    assert 70 <= sum(h > 0 for h in hits_uniform) <= 130, hits_uniform
    assert hits_plain < 10  # a uniform crop meets the patch about 2 % of the time
    a = TrainTransform(class_uniform_p=0.5, **kw)(rgb, label, np.random.default_rng(7))
    b = TrainTransform(class_uniform_p=0.5, **kw)(rgb, label, np.random.default_rng(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b)), "deterministic per seed"
    only_ignore = np.full((40, 40), 255, np.uint8)
    image, target, _ = uniform(np.zeros((40, 40, 3), np.uint8), only_ignore, rng)
    assert target.shape == (32, 32) and (target == 255).all()
    with pytest.raises(ValueError, match="class_uniform_p"):
        TrainTransform(crop_size=(8, 8), class_uniform_p=1.5)


def test_seeded_batches_resume_and_ranks():
    full = list(SeededBatches(10, 2, seed=1, start=0, stop=12))
    assert list(SeededBatches(10, 2, seed=1, start=7, stop=12)) == full[7:]
    assert all(len(b) == 2 for b in full)
    epoch0 = [i for b in full[:5] for i, _ in b]
    assert sorted(epoch0) == list(range(10))
    r0 = [i for b in SeededBatches(10, 2, 1, 0, 2, rank=0, world=2) for i, _ in b]
    r1 = [i for b in SeededBatches(10, 2, 1, 0, 2, rank=1, world=2) for i, _ in b]
    assert not set(r0) & set(r1)
