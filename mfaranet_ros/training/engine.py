"""The MFARANet training loop: iteration-based SGD + poly, MJS loss, exact resume, DDP.

Launch with ``mfaranet train --config FILE`` on one process, or with ``torchrun
--nproc_per_node N -m mfaranet_ros.cli train --config FILE`` for DDP (NCCL + SyncBN on
GPUs; gloo with per-process BatchNorm on CPU, where PyTorch has no SyncBN).
"""
from __future__ import annotations

import copy
import csv
import logging
import math
import os
import random
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..model import (MFARANet, ModelMetadata, cityscapes_metadata, load_backbone, load_init_weights,
                     save_checkpoint)
from ..model.checkpoint import FORMAT_TAG, load_state_dict_strict
from .datasets import SeededBatches, build_dataset, camvid_metadata
from .losses import MJSLoss
from .metrics import confusion_matrix, iou_from_confusion, predict_labels
from .transforms import TrainTransform

__all__ = ["DEFAULT_CONFIG", "merge_config", "load_config", "train", "poly_lr", "build_optimizer"]

log = logging.getLogger(__name__)

DEFAULT_CONFIG: Dict = {
    "output_dir": "out/train",
    "seed": 0,
    "device": "auto",            # auto | cpu | cuda
    "data": {"type": "generated", "train": None, "val": None, "val_limit": None},
    "model": {"num_classes": 19, "backbone": None, "init_weights": None,
              "backbone_dropout": [0.0] * 5, "use_dilation": True},
    "augment": {"base_size": None, "crop_size": [1024, 1024], "scale_range": [0.5, 2.0],
                "rotate_deg": 10.0, "rotate_p": 0.5, "flip_p": 0.5, "class_uniform_p": 0.0},
    "loss": {"ohem_thresh": 0.7, "min_kept": 100000, "seg_weight": 1.0, "edge_weight": 0.3,
             "att_weight": 0.1, "gate": 0.8},
    "optim": {"base_lr": 0.005, "head_lr_mult": 10.0, "momentum": 0.9, "weight_decay": 5e-4,
              "power": 0.9},
    "train": {"batch_size": 7, "iterations": 42400, "workers": 4, "amp": True, "channels_last": False,
              "threads": 0,
              "val_every": 212, "checkpoint_every": 212, "log_every": 10, "progress": True},
    "eval": {"input_size": None},
    "metadata": {"dataset": "cityscapes", "source": None},
}


def merge_config(base: Dict, override: Dict) -> Dict:
    """Recursive dict merge; unknown top-level or nested keys are errors (typos fail loudly)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in out:
            raise KeyError(f"unknown config key {key!r} (known: {sorted(out)})")
        if isinstance(out[key], dict) and isinstance(value, dict) and key != "data":
            out[key] = merge_config(out[key], value)
        elif key == "data" and isinstance(value, dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str, overrides: Optional[Dict] = None) -> Dict:
    import yaml

    with open(path, "r", encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    cfg = merge_config(DEFAULT_CONFIG, cfg)
    return merge_config(cfg, overrides or {})


def poly_lr(base: float, iteration: int, max_iter: int, power: float = 0.9) -> float:
    return base * (1.0 - iteration / max_iter) ** power


def build_optimizer(model: MFARANet, cfg: Dict) -> torch.optim.SGD:
    """SGD with the backbone at ``base_lr`` and every new layer at ``base_lr * head_lr_mult``."""
    o = cfg["optim"]
    backbone = list(model.encoder.parameters())
    ids = {id(p) for p in backbone}
    others = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": backbone, "lr": o["base_lr"], "lr_mult": 1.0},
              {"params": others, "lr": o["base_lr"] * o["head_lr_mult"], "lr_mult": o["head_lr_mult"]}]
    return torch.optim.SGD(groups, lr=o["base_lr"], momentum=o["momentum"],
                           weight_decay=o["weight_decay"])


def _metadata(cfg: Dict, metrics: Optional[Dict[str, float]] = None) -> ModelMetadata:
    m = cfg["metadata"]
    source = m.get("source") or f"mfaranet train, {cfg['train']['iterations']} iterations, seed {cfg['seed']}"
    size = cfg["eval"].get("input_size")
    if m.get("dataset") == "camvid":
        return camvid_metadata(source=source, input_size=size, metrics=metrics or {})
    meta = cityscapes_metadata(source=source, input_size=size, metrics=metrics or {})
    meta.dataset = m.get("dataset", "cityscapes")
    return meta


def _dist_info() -> Tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def _rng_state() -> Dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def _collate(batch: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    images, labels, edges = zip(*batch)
    return torch.stack(images), torch.stack(labels), torch.stack(edges)


def save_training_state(path: str, model: MFARANet, optimizer: torch.optim.Optimizer,
                        iteration: int, cfg: Dict, metrics: Dict[str, float],
                        scaler: Optional[torch.amp.GradScaler] = None) -> None:
    """A project-format checkpoint (loadable by ``load_checkpoint``) plus the training state."""
    extra = {"training": {"iteration": iteration, "optimizer": optimizer.state_dict(),
                          "rng": _rng_state(), "config": cfg,
                          "scaler": scaler.state_dict() if scaler is not None else None}}
    save_checkpoint(path, model, _metadata(cfg, metrics), extra=extra)


def _load_training_state(path: str, model: MFARANet, optimizer: torch.optim.Optimizer,
                         scaler: Optional[torch.amp.GradScaler]) -> int:
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


def _truncate_log(path: str, iteration: int) -> None:
    """Drops log rows past ``iteration``: a run killed after its last checkpoint logged
    iterations that the resumed run will do again."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= iteration]
    if len(kept) != len(rows):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(kept)


def validate(model: MFARANet, dataset, cfg: Dict, device: torch.device, rank: int = 0,
             world: int = 1) -> np.ndarray:
    """Confusion matrix over the validation set (each process takes every world-th frame)."""
    n = model.num_classes
    conf = np.zeros((n, n), np.int64)
    mean, std = DEFAULT_MEAN_STD
    was = model.training
    model.eval()
    for i in range(rank, len(dataset), world):
        rgb, label = dataset.load(i)
        pred = predict_labels(model, rgb, cfg["eval"].get("input_size"), mean, std, device)
        conf += confusion_matrix(pred, label, n)
    model.train(was)
    if world > 1:
        t = torch.from_numpy(conf).to(device)
        dist.all_reduce(t)
        conf = t.cpu().numpy()
    return conf


DEFAULT_MEAN_STD = (cityscapes_metadata().mean, cityscapes_metadata().std)


def train(cfg: Dict, resume: bool = True, stop_at: Optional[int] = None,
          return_model: bool = False):
    """Runs (or resumes) training as ``cfg`` describes; returns the last metrics
    (and the trained, unwrapped model with ``return_model=True``).

    ``output_dir`` receives ``last.pth`` (resumable), ``best.pth`` (best val mIoU) and
    ``log.csv``. ``stop_at`` ends the run early at that iteration (the schedule still
    runs to ``train.iterations``), which is how a run is split into sessions.
    """
    rank, world, local = _dist_info()
    tcfg, out_dir = cfg["train"], cfg["output_dir"]
    want = cfg["device"]
    use_cuda = torch.cuda.is_available() if want == "auto" else want == "cuda"
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if tcfg.get("threads"):
        # on a shared CPU one thread per process beats OpenMP threads waiting on each other
        torch.set_num_threads(int(tcfg["threads"]))
    torch.manual_seed(cfg["seed"] + rank)
    random.seed(cfg["seed"] + rank)
    os.makedirs(out_dir, exist_ok=True)

    aug = cfg["augment"]
    transform = TrainTransform(
        crop_size=tuple(aug["crop_size"]), scale_range=tuple(aug["scale_range"]),
        rotate_deg=aug["rotate_deg"], rotate_p=aug["rotate_p"], flip_p=aug["flip_p"],
        class_uniform_p=float(aug.get("class_uniform_p") or 0.0),
        base_size=tuple(aug["base_size"]) if aug.get("base_size") else None)
    train_set = build_dataset(cfg["data"], "train", transform)
    val_set = build_dataset(cfg["data"], "val", None) if cfg["data"].get("val") else None

    mcfg = cfg["model"]
    model = MFARANet(mcfg["num_classes"], boundary_heads=True, use_dilation=mcfg["use_dilation"],
                     backbone_dropout=mcfg["backbone_dropout"])
    if mcfg.get("backbone"):
        load_backbone(model, mcfg["backbone"])
    if mcfg.get("init_weights"):
        # fine-tuning: start from whole-model weights (a project or official checkpoint);
        # a resumed run's last.pth (below) takes precedence over them
        load_init_weights(model, mcfg["init_weights"])
    fmt = torch.channels_last if tcfg.get("channels_last") else torch.contiguous_format
    model.to(device, memory_format=fmt)
    optimizer = build_optimizer(model, cfg)
    amp = bool(tcfg["amp"]) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if amp else None
    criterion = MJSLoss(cfg["loss"]["ohem_thresh"], cfg["loss"]["min_kept"], cfg["loss"]["seg_weight"],
                        cfg["loss"]["edge_weight"], cfg["loss"]["att_weight"], cfg["loss"]["gate"])

    start = 0
    last_path = os.path.join(out_dir, "last.pth")
    if resume and os.path.isfile(last_path):
        start = _load_training_state(last_path, model, optimizer, scaler)
        if rank == 0:
            log.info("resumed from %s at iteration %d", last_path, start)

    net: nn.Module = model
    if world > 1:
        if device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif rank == 0:
            log.info("CPU DDP: PyTorch has no CPU SyncBatchNorm, BatchNorm stays per process")
        net = DistributedDataParallel(net, device_ids=[local] if device.type == "cuda" else None)
    net.train()

    max_it = int(tcfg["iterations"])
    stop = max_it if stop_at is None else min(max_it, int(stop_at))
    batches = SeededBatches(len(train_set), tcfg["batch_size"], cfg["seed"], start, stop, rank, world)
    loader = DataLoader(train_set, batch_sampler=batches, num_workers=tcfg["workers"],
                        collate_fn=_collate, pin_memory=device.type == "cuda",
                        # its own generator: creating the iterator must not consume the
                        # global RNG (dropout's), or a resumed run would diverge
                        generator=torch.Generator().manual_seed(cfg["seed"]))

    log_path = os.path.join(out_dir, "log.csv")
    fields = ["iteration", "lr", "loss", "main", "ohem", "edge", "gated", "sec_per_it", "val_miou"]
    if rank == 0 and not os.path.isfile(log_path):
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(fields)
    elif rank == 0:
        _truncate_log(log_path, start)
    bar = None
    if rank == 0 and tcfg.get("progress", True):
        from tqdm import tqdm
        bar = tqdm(total=stop, initial=start, desc="train", dynamic_ncols=True, mininterval=5)

    metrics: Dict[str, float] = {}
    best = -1.0
    best_path = os.path.join(out_dir, "best.pth")
    if os.path.isfile(best_path):
        prev = torch.load(best_path, map_location="cpu", weights_only=True)
        best = float(prev.get("metadata", {}).get("metrics", {}).get("val_miou", -1.0))
    running: Dict[str, float] = {}
    tick = time.time()
    it = start
    for it, (images, labels, edges) in enumerate(loader, start=start):
        for group in optimizer.param_groups:
            group["lr"] = poly_lr(cfg["optim"]["base_lr"] * group["lr_mult"], it, max_it,
                                  cfg["optim"]["power"])
        images = images.to(device, non_blocking=True).contiguous(memory_format=fmt)
        labels = labels.to(device, non_blocking=True)
        edges = edges.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            outputs = net(images)
        loss, parts = criterion(outputs, labels, edges)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at iteration {it}; parts {parts}")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        done = it + 1
        for k, v in [("loss", loss.detach())] + list(parts.items()):
            running[k] = running.get(k, 0.0) + float(v)
        running["n"] = running.get("n", 0) + 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        val_miou = None
        if val_set is not None and tcfg["val_every"] and (done % tcfg["val_every"] == 0 or done == max_it):
            conf = validate(model, val_set, cfg, device, rank, world)
            val_miou, _, _ = iou_from_confusion(conf)
            metrics["val_miou"] = val_miou
            if rank == 0:
                log.info("iteration %d: val mIoU %.4f", done, val_miou)
                if val_miou > best:
                    best = val_miou
                    save_checkpoint(best_path, model, _metadata(cfg, {"val_miou": val_miou,
                                                                       "iteration": done}))
        if rank == 0 and (done % tcfg["log_every"] == 0 or val_miou is not None or done == stop):
            n = running.pop("n")
            row = {k: running[k] / n for k in running}
            row.update(iteration=done, lr=optimizer.param_groups[0]["lr"],
                       sec_per_it=(time.time() - tick) / n,
                       val_miou="" if val_miou is None else f"{val_miou:.5f}")
            with open(log_path, "a", newline="") as f:
                csv.writer(f).writerow([row.get(k, "") for k in fields])
            running, tick = {}, time.time()
            metrics["loss"] = float(row["loss"])
        if rank == 0 and (done % tcfg["checkpoint_every"] == 0 or done == stop):
            save_training_state(last_path, model, optimizer, done, cfg, metrics, scaler)
    if bar is not None:
        bar.close()
    if world > 1:
        dist.barrier()
    return (metrics, model) if return_model else metrics
