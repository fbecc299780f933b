"""The MFARANet training loop: iteration-based SGD + poly, MJS loss, exact resume, DDP.

Launch with ``mfaranet train --config FILE`` on one process, or with ``torchrun
--nproc_per_node N -m mfaranet_ros.cli train --config FILE`` for DDP (NCCL + SyncBN on
GPUs; gloo with per-process BatchNorm on CPU, where PyTorch has no SyncBN).

The steps have names, in the manner of torchvision's segmentation reference script:
``setup_process`` and the ``build_*`` functions make the parts, ``train_step`` is one
iteration, ``validate`` measures, ``save_training_state`` / ``load_training_state``
save and resume, and ``train`` strings them together.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..model import (
    MFARANet,
    ModelMetadata,
    cityscapes_metadata,
    load_backbone,
    load_init_weights,
    save_checkpoint,
)
from ..model.checkpoint import FORMAT_TAG, load_state_dict_strict
from ..model.metadata import IMAGENET_MEAN, IMAGENET_STD
from .config import (
    AugmentConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    config_to_dict,
)
from .datasets import SeededBatches, SegmentationDataset, build_dataset, camvid_metadata
from .losses import MJSLoss
from .metrics import confusion_matrix, iou_from_confusion, predict_labels
from .transforms import TrainTransform

__all__ = [
    "Process", "TrainingRun", "setup_process", "build_transform", "build_datasets",
    "build_model", "build_optimizer", "build_criterion", "build_loader", "poly_lr",
    "train_step", "validate", "save_training_state", "load_training_state", "train",
]

log = logging.getLogger(__name__)

#: Columns of ``log.csv``: one row per ``train.log_every`` iterations (means over them).
LOG_FIELDS = ("iteration", "lr", "loss", "main", "ohem", "edge", "gated", "sec_per_it",
              "val_miou")

Batch = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class Process:
    """This process's place in the run: ``rank`` of ``world``, and its device."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainingRun:
    """The parts one training process works with."""

    cfg: TrainConfig
    proc: Process
    model: MFARANet          # unwrapped: what is validated and saved
    net: nn.Module           # what the steps run: the model, DDP-wrapped with several processes
    optimizer: torch.optim.SGD
    scaler: Optional[torch.amp.GradScaler]
    criterion: MJSLoss
    memory_format: torch.memory_format
    start: int = 0           # the first iteration (after a resume)

    @property
    def amp(self) -> bool:
        return self.scaler is not None


# --------------------------------------------------------------------------- build

def setup_process(cfg: TrainConfig) -> Process:
    """Joins the process group under torchrun, picks the device, threads and seeds."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, local = 0, 0
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if cfg.device == "auto" else cfg.device == "cuda"
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if cfg.train.threads:
        # on a shared CPU one thread per process beats OpenMP threads waiting on each other
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)
    os.makedirs(cfg.output_dir, exist_ok=True)
    return Process(rank, world, local, device)


def build_transform(aug: AugmentConfig) -> TrainTransform:
    return TrainTransform(crop_size=aug.crop_size, scale_range=aug.scale_range,
                          rotate_deg=aug.rotate_deg, rotate_p=aug.rotate_p, flip_p=aug.flip_p,
                          class_uniform_p=aug.class_uniform_p, base_size=aug.base_size)


def build_datasets(cfg: TrainConfig) -> Tuple[SegmentationDataset,
                                                Optional[SegmentationDataset]]:
    """The augmented training set and the validation set (``None`` without ``data.val``)."""
    train_set = build_dataset(cfg.data, "train", build_transform(cfg.augment))
    val_set = build_dataset(cfg.data, "val", None) if cfg.data.val else None
    return train_set, val_set


def build_model(mcfg: ModelConfig) -> MFARANet:
    """MFARANet (the variant ``mcfg.architecture`` names) with its training-only boundary
    heads, from ImageNet or whole-model weights."""
    model = MFARANet(mcfg.num_classes, architecture=dataclasses.asdict(mcfg.architecture),
                     boundary_heads=True, use_dilation=mcfg.use_dilation,
                     backbone_dropout=mcfg.backbone_dropout)
    if mcfg.backbone:
        load_backbone(model, mcfg.backbone)
    if mcfg.init_weights:
        # fine-tuning: a resumed run's last.pth (load_training_state) takes precedence
        load_init_weights(model, mcfg.init_weights)
    return model


def build_optimizer(model: MFARANet, optim: OptimConfig) -> torch.optim.SGD:
    """SGD with the backbone at ``base_lr`` and every new layer at ``base_lr * head_lr_mult``."""
    backbone = list(model.encoder.parameters())
    ids = {id(p) for p in backbone}
    others = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": backbone, "lr": optim.base_lr, "lr_mult": 1.0},
              {"params": others, "lr": optim.base_lr * optim.head_lr_mult,
               "lr_mult": optim.head_lr_mult}]
    return torch.optim.SGD(groups, lr=optim.base_lr, momentum=optim.momentum,
                           weight_decay=optim.weight_decay)


def build_criterion(loss: LossConfig) -> MJSLoss:
    return MJSLoss(loss.ohem_thresh, loss.min_kept, loss.seg_weight, loss.edge_weight,
                   loss.att_weight, loss.gate)


def _wrap_for_ddp(model: MFARANet, proc: Process) -> nn.Module:
    if proc.world == 1:
        return model
    net: nn.Module = model
    if proc.device.type == "cuda":
        net = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif proc.is_main:
        log.info("CPU DDP: PyTorch has no CPU SyncBatchNorm, BatchNorm stays per process")
    return DistributedDataParallel(
        net, device_ids=[proc.local_rank] if proc.device.type == "cuda" else None)


def build_run(cfg: TrainConfig, proc: Process, resume: bool) -> TrainingRun:
    """Model, optimiser, AMP scaler and loss, resumed from ``output_dir/last.pth`` if asked."""
    model = build_model(cfg.model)
    fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.to(proc.device, memory_format=fmt)
    optimizer = build_optimizer(model, cfg.optim)
    amp = cfg.train.amp and proc.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if amp else None
    run = TrainingRun(cfg, proc, model, model, optimizer, scaler, build_criterion(cfg.loss), fmt)
    last_path = os.path.join(cfg.output_dir, "last.pth")
    if resume and os.path.isfile(last_path):
        run.start = load_training_state(last_path, model, optimizer, scaler)
        if proc.is_main:
            log.info("resumed from %s at iteration %d", last_path, run.start)
    run.net = _wrap_for_ddp(model, proc)
    run.net.train()
    return run


def _collate(batch: List[Batch]) -> Batch:
    images, labels, edges = zip(*batch)
    return torch.stack(images), torch.stack(labels), torch.stack(edges)


def build_loader(train_set: SegmentationDataset, cfg: TrainConfig, proc: Process, start: int,
                 stop: int) -> DataLoader:
    """Batches for iterations ``start..stop-1``: the ones an uninterrupted run would see."""
    batches = SeededBatches(len(train_set), cfg.train.batch_size, cfg.seed, start, stop,
                            proc.rank, proc.world)
    return DataLoader(train_set, batch_sampler=batches, num_workers=cfg.train.workers,
                      collate_fn=_collate, pin_memory=proc.device.type == "cuda",
                      # its own generator: creating the iterator must not consume the
                      # global RNG (dropout's), or a resumed run would diverge
                      generator=torch.Generator().manual_seed(cfg.seed))


# ---------------------------------------------------------------------- one iteration

def poly_lr(base: float, iteration: int, max_iter: int, power: float = 0.9) -> float:
    return base * (1.0 - iteration / max_iter) ** power


def _set_learning_rates(optimizer: torch.optim.SGD, optim: OptimConfig, iteration: int,
                        max_iter: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = poly_lr(optim.base_lr * group["lr_mult"], iteration, max_iter, optim.power)


def train_step(run: TrainingRun, batch: Batch,
               iteration: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """One SGD step on ``batch`` = images ``(B, 3, h, w)`` float, labels ``(B, h, w)``
    int64 (255 = ignore), boundaries ``(B, 1, h, w)`` 0/1; returns the loss and its parts."""
    device = run.proc.device
    images, labels, edges = batch
    images = images.to(device, non_blocking=True).contiguous(memory_format=run.memory_format)
    labels = labels.to(device, non_blocking=True)
    edges = edges.to(device, non_blocking=True)
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=run.amp):
        outputs = run.net(images)
    loss, parts = run.criterion(outputs, labels, edges)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at iteration {iteration}; parts {parts}")
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    return loss.detach(), parts


# ------------------------------------------------------------------------- validation

def validate(model: MFARANet, dataset: SegmentationDataset, cfg: TrainConfig,
             device: torch.device, rank: int = 0, world: int = 1) -> np.ndarray:
    """``(C, C)`` confusion matrix over the validation set; each process takes every
    ``world``-th frame and the matrices are summed across processes."""
    n = model.num_classes
    conf = np.zeros((n, n), np.int64)
    was_training = model.training
    model.eval()
    for i in range(rank, len(dataset), world):
        rgb, label = dataset.load(i)
        pred = predict_labels(model, rgb, cfg.eval.input_size, IMAGENET_MEAN, IMAGENET_STD,
                              device)
        conf += confusion_matrix(pred, label, n)
    model.train(was_training)
    if world > 1:
        summed = torch.from_numpy(conf).to(device)
        dist.all_reduce(summed)
        conf = summed.cpu().numpy()
    return conf


def _metadata(cfg: TrainConfig, metrics: Optional[Dict[str, float]] = None) -> ModelMetadata:
    source = cfg.metadata.source or (f"mfaranet train, {cfg.train.iterations} iterations, "
                                     f"seed {cfg.seed}")
    size = cfg.eval.input_size
    if cfg.metadata.dataset == "camvid":
        return camvid_metadata(source=source, input_size=size, metrics=metrics or {})
    meta = cityscapes_metadata(source=source, input_size=size, metrics=metrics or {})
    meta.dataset = cfg.metadata.dataset
    return meta


class BestCheckpoint:
    """``best.pth``: the weights of the best validation mIoU so far (kept across resumes)."""

    def __init__(self, path: str) -> None:
        self.path, self.miou = path, -1.0
        if os.path.isfile(path):
            prev = torch.load(path, map_location="cpu", weights_only=True)
            self.miou = float(prev.get("metadata", {}).get("metrics", {}).get("val_miou", -1.0))

    def offer(self, run: TrainingRun, miou: float, iteration: int) -> None:
        if miou > self.miou:
            self.miou = miou
            save_checkpoint(self.path, run.model,
                            _metadata(run.cfg, {"val_miou": miou, "iteration": iteration}))


def _validate_run(run: TrainingRun, val_set: SegmentationDataset, done: int,
                  best: BestCheckpoint) -> float:
    conf = validate(run.model, val_set, run.cfg, run.proc.device, run.proc.rank, run.proc.world)
    miou = iou_from_confusion(conf)[0]
    if run.proc.is_main:
        log.info("iteration %d: val mIoU %.4f", done, miou)
        best.offer(run, miou, done)
    return miou


# ---------------------------------------------------------------------- save / resume

def _rng_state() -> Dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def _set_rng_state(state: Dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: str, model: MFARANet, optimizer: torch.optim.Optimizer,
                        iteration: int, cfg: TrainConfig, metrics: Dict[str, float],
                        scaler: Optional[torch.amp.GradScaler] = None) -> None:
    """A project-format checkpoint (loadable by ``load_checkpoint``) plus the training state."""
    extra = {"training": {"iteration": iteration, "optimizer": optimizer.state_dict(),
                          "rng": _rng_state(), "config": config_to_dict(cfg),
                          "scaler": scaler.state_dict() if scaler is not None else None}}
    save_checkpoint(path, model, _metadata(cfg, metrics), extra=extra)


def load_training_state(path: str, model: MFARANet, optimizer: torch.optim.Optimizer,
                        scaler: Optional[torch.amp.GradScaler]) -> int:
    """Restores model, optimiser, AMP scaler and RNG from ``path``; returns its iteration."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if obj.get("format") != FORMAT_TAG or "training" not in obj:
        raise ValueError(f"{path!r} is not a training checkpoint of this project")
    load_state_dict_strict(model, obj["state_dict"], source=repr(path))
    state = obj["training"]
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    return int(state["iteration"])


class CsvLog:
    """``log.csv``: means of the loss parts since the last row, the lr and the val mIoU."""

    def __init__(self, path: str, start: int) -> None:
        self.path = path
        if os.path.isfile(path):
            self._truncate(start)
        else:
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(LOG_FIELDS)
        self.sums: Dict[str, float] = {}
        self.count, self.tick = 0, time.time()

    def _truncate(self, iteration: int) -> None:
        """Drops rows past ``iteration``: a run killed after its last checkpoint logged
        iterations that the resumed run will do again."""
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= iteration]
        if len(kept) != len(rows):
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerows(kept)

    def add(self, loss: torch.Tensor, parts: Dict[str, torch.Tensor]) -> None:
        for key, value in [("loss", loss)] + list(parts.items()):
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1

    def write(self, iteration: int, lr: float, val_miou: Optional[float]) -> float:
        """Appends a row of the means since the last one; returns the mean loss."""
        row = {k: v / self.count for k, v in self.sums.items()}
        row.update(iteration=iteration, lr=lr, sec_per_it=(time.time() - self.tick) / self.count,
                   val_miou="" if val_miou is None else f"{val_miou:.5f}")
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in LOG_FIELDS])
        self.sums, self.count, self.tick = {}, 0, time.time()
        return float(row["loss"])


# --------------------------------------------------------------------------- the loop

def _progress_bar(run: TrainingRun, stop: int):
    if not (run.proc.is_main and run.cfg.train.progress):
        return None
    from tqdm import tqdm
    return tqdm(total=stop, initial=run.start, desc="train", dynamic_ncols=True, mininterval=5)


def _iterate(run: TrainingRun, loader: DataLoader, val_set: Optional[SegmentationDataset],
             stop: int) -> Dict[str, float]:
    """Runs iterations ``run.start..stop-1``: step, log, validate, checkpoint."""
    cfg, loop, main = run.cfg, run.cfg.train, run.proc.is_main
    out = cfg.output_dir
    csv_log = CsvLog(os.path.join(out, "log.csv"), run.start) if main else None
    best = BestCheckpoint(os.path.join(out, "best.pth"))
    bar = _progress_bar(run, stop)
    metrics: Dict[str, float] = {}
    for it, batch in enumerate(loader, start=run.start):
        _set_learning_rates(run.optimizer, cfg.optim, it, loop.iterations)
        loss, parts = train_step(run, batch, it)
        done, lr = it + 1, run.optimizer.param_groups[0]["lr"]
        if csv_log is not None:
            csv_log.add(loss, parts)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
        val_miou = None
        if val_set is not None and loop.val_every and (
                done % loop.val_every == 0 or done == loop.iterations):
            val_miou = metrics["val_miou"] = _validate_run(run, val_set, done, best)
        if csv_log is not None and (done % loop.log_every == 0 or val_miou is not None
                                    or done == stop):
            metrics["loss"] = csv_log.write(done, lr, val_miou)
        if main and (done % loop.checkpoint_every == 0 or done == stop):
            save_training_state(os.path.join(out, "last.pth"), run.model, run.optimizer, done,
                                cfg, metrics, run.scaler)
    if bar is not None:
        bar.close()
    return metrics


def train(cfg: TrainConfig, resume: bool = True, stop_at: Optional[int] = None,
          return_model: bool = False):
    """Runs (or resumes) training as ``cfg`` describes; returns the last metrics
    (and the trained, unwrapped model with ``return_model=True``).

    ``output_dir`` receives ``last.pth`` (resumable), ``best.pth`` (best val mIoU) and
    ``log.csv``. ``stop_at`` ends the run early at that iteration (the schedule still
    runs to ``train.iterations``), which is how a run is split into sessions.
    """
    proc = setup_process(cfg)
    train_set, val_set = build_datasets(cfg)
    run = build_run(cfg, proc, resume)
    stop = cfg.train.iterations if stop_at is None else min(cfg.train.iterations, int(stop_at))
    loader = build_loader(train_set, cfg, proc, run.start, stop)
    metrics = _iterate(run, loader, val_set, stop)
    if proc.world > 1:
        dist.barrier()
    return (metrics, run.model) if return_model else metrics
