"""Segmentation datasets: Cityscapes, CamVid (11 classes), generated scenes.

Every dataset exposes ``load(i) -> (rgb uint8 (H, W, 3), label uint8 (H, W))`` with
labels already in training ids (255 = ignore). ``__getitem__`` takes either an index
(no augmentation: for evaluation) or ``(index, sample_seed)`` (the training transform
with a generator seeded by ``sample_seed``; see :class:`SeededBatches`).
"""
from __future__ import annotations

import glob
import os
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..evaluation.folders import folder_files, read_label, read_rgb
from ..model.metadata import ModelMetadata
from .config import ConfigError, DataConfig, GeneratedSplit
from .transforms import TrainTransform, normalize

__all__ = [
    "SegmentationDataset", "CityscapesDataset", "CamVidDataset", "FolderDataset",
    "GeneratedDataset", "SeededBatches", "CAMVID_CLASSES", "CAMVID_PALETTE",
    "camvid_metadata", "cityscapes_label_lut", "build_dataset",
]

CAMVID_CLASSES = ("sky", "building", "pole", "road", "sidewalk", "tree", "sign symbol",
                  "fence", "car", "pedestrian", "bicyclist")
CAMVID_PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192),
                  (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                  (0, 128, 192))


def camvid_metadata(source: str = "unknown", input_size: Optional[Sequence[int]] = None,
                    **extra) -> ModelMetadata:
    """Metadata of an 11-class CamVid model (label 11 = void is ignored)."""
    return ModelMetadata(class_names=list(CAMVID_CLASSES),
                         palette=[list(c) for c in CAMVID_PALETTE],
                         input_size=list(input_size) if input_size is not None else None,
                         source=source, dataset="camvid", **extra)


class SegmentationDataset(Dataset):
    """Base class: subclasses implement ``__len__`` and ``load``."""

    def __init__(self, transform: Optional[TrainTransform] = None) -> None:
        self.transform = transform

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __getitem__(self, item: Union[int, Tuple[int, int]]):
        if isinstance(item, tuple):
            index, seed = item
            if self.transform is None:
                raise RuntimeError("this dataset has no training transform")
            rgb, label = self.load(int(index))
            return self.transform(rgb, label, np.random.default_rng(int(seed)))
        rgb, label = self.load(int(item))
        mean = self.transform.mean if self.transform else None
        std = self.transform.std if self.transform else None
        image = normalize(rgb) if mean is None else normalize(rgb, mean, std)
        return image, torch.from_numpy(label.astype(np.int64))


class CityscapesDataset(SegmentationDataset):
    """Cityscapes standard layout: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png``, mapped to the 19 trainIds through
    the official label table of ``cityscapesscripts``."""

    def __init__(self, root: str, split: str = "train", **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.split = root, split
        pattern = os.path.join(root, "leftImg8bit", split, "*", "*_leftImg8bit.png")
        self.images = sorted(glob.glob(pattern))
        if not self.images:
            raise FileNotFoundError(f"no Cityscapes images match {pattern!r}")
        self.labels = []
        for img in self.images:
            city = os.path.basename(os.path.dirname(img))
            stem = os.path.basename(img)[: -len("_leftImg8bit.png")]
            lab = os.path.join(root, "gtFine", split, city, f"{stem}_gtFine_labelIds.png")
            if not os.path.isfile(lab):
                raise FileNotFoundError(f"missing label {lab!r} for {img!r}")
            self.labels.append(lab)
        self.lut = cityscapes_label_lut()

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int):
        return read_rgb(self.images[index]), self.lut[read_label(self.labels[index])]


def cityscapes_label_lut() -> np.ndarray:
    """A 256-entry lookup table labelId -> trainId (255 for ignored ids) from cityscapesscripts."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, 255, np.uint8)
    for lab in labels:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < 255:
            lut[lab.id] = lab.trainId
    return lut


class CamVidDataset(SegmentationDataset):
    """CamVid in its common 11-class layout (SegNet tutorial): ``<split>/*.png`` images and
    ``<split>annot/*.png`` labels holding 0..10, with 11 (void) mapped to 255."""

    def __init__(self, root: str, split: str = "train", **kwargs) -> None:
        super().__init__(**kwargs)
        self.images: List[str] = []
        self.labels: List[str] = []
        for part in split.split("+"):  # "train+val" is the usual training set
            imgs = sorted(glob.glob(os.path.join(root, part, "*.png")))
            if not imgs:
                raise FileNotFoundError(f"no CamVid images in {os.path.join(root, part)!r}")
            for img in imgs:
                lab = os.path.join(root, f"{part}annot", os.path.basename(img))
                if not os.path.isfile(lab):
                    raise FileNotFoundError(f"missing label {lab!r} for {img!r}")
                self.images.append(img)
                self.labels.append(lab)
        self.lut = np.full(256, 255, np.uint8)
        self.lut[:11] = np.arange(11)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int):
        return read_rgb(self.images[index]), self.lut[read_label(self.labels[index])]


class FolderDataset(SegmentationDataset):
    """``images/*.png`` + ``labels/*.png`` (trainIds), as ``mfaranet synth`` writes them."""

    def __init__(self, root: str, limit: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        pairs = folder_files(root, limit)
        self.images = [image for image, _ in pairs]
        self.labels = [label for _, label in pairs]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int):
        return read_rgb(self.images[index]), read_label(self.labels[index])


class GeneratedDataset(SegmentationDataset):
    """Scenes generated on the fly: frame ``i`` is
    ``generate_scene(frame_seed(seed, i), size)``."""

    def __init__(self, frames: int, size: Tuple[int, int], seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.frames, self.size, self.seed = int(frames), tuple(size), int(seed)

    def __len__(self) -> int:
        return self.frames

    def load(self, index: int):
        from ..synthetic import frame_seed, generate_scene

        if not 0 <= index < self.frames:
            raise IndexError(index)
        return generate_scene(frame_seed(self.seed, index), self.size)


class SeededBatches:
    """Batches of ``(index, sample_seed)`` for iteration-based training.

    Epoch ``e`` is a permutation drawn from ``(seed, e)``; rank ``r`` of ``world`` takes
    every ``world``-th index (like ``DistributedSampler``), incomplete batches are
    dropped. Iterating from iteration ``start`` yields exactly the batches an
    uninterrupted run would see from there, which makes resume exact.
    """

    def __init__(self, length: int, batch_size: int, seed: int, start: int, stop: int,
                 rank: int = 0, world: int = 1) -> None:
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.per_epoch = (length // world) // batch_size
        if self.per_epoch < 1:
            raise ValueError(f"{length} samples are too few for batch {batch_size} x {world} "
                             f"processes")

    def batch(self, iteration: int) -> List[Tuple[int, int]]:
        epoch, pos = divmod(iteration, self.per_epoch)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.length, generator=g)[self.rank::self.world]
        idx = order[pos * self.batch_size:(pos + 1) * self.batch_size].tolist()
        return [(i, int(np.random.SeedSequence([self.seed, epoch, i]).generate_state(1)[0]))
                for i in idx]

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for it in range(self.start, self.stop):
            yield self.batch(it)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def build_dataset(data: DataConfig, split: str,
                  transform: Optional[TrainTransform]) -> SegmentationDataset:
    """The dataset of ``data``'s ``split`` (``"train"`` or ``"val"``) as its ``type`` reads it."""
    part = getattr(data, split)
    if data.type == "generated":
        if not isinstance(part, GeneratedSplit):
            raise ConfigError(f"data.{split}: a generated split is {{frames, size, seed}}, "
                              f"got {part!r}")
        return GeneratedDataset(part.frames, part.size, part.seed, transform=transform)
    if not isinstance(part, str):
        raise ConfigError(f"data.{split}: {data.type} needs a split name or folder, got {part!r}")
    if data.type == "folder":
        return FolderDataset(part, limit=getattr(data, f"{split}_limit"), transform=transform)
    if not data.root:
        raise ConfigError(f"data.root: {data.type} needs the dataset's root folder")
    if data.type == "cityscapes":
        return CityscapesDataset(data.root, part, transform=transform)
    return CamVidDataset(data.root, part, transform=transform)
