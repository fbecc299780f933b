"""``mfaranet ablate``: train every variant of a study, score it, measure it, one table.

Each run trains through :func:`~.engine.train`, the entry point of ``mfaranet train``
(its recipe is written to ``runs/<variant>/seed<N>/recipe.yaml``, so a cluster user can
train any run with ``torchrun ... -m mfaranet_ros.cli train --config`` that file, and
``ablate`` then finds it finished). A finished run is never trained again: its
``last.pth`` holds the recipe's last iteration. Every checkpoint is scored by the
Segmenter on the same held-out frames with the project's one metric (the figures of
``mfaranet eval-weights``); parameters, GFLOPs and latency are measured for every
variant in the same process, the variants taking turns, so their latencies share the
machine's load. Ctrl-C keeps what finished: the report is written for it.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable, Dict, List, Optional

import torch

from ..model.checkpoint import FORMAT_TAG, file_sha256
from .config import ConfigError, config_to_dict
from .study import Run, Study

__all__ = ["StudyError", "evaluate_checkpoint", "prepare_runs", "run_study",
           "trained_iterations"]

log = logging.getLogger(__name__)


class StudyError(ConfigError):
    """A study whose folder holds runs of another recipe (the message says what to do)."""


# ------------------------------------------------------------------------- runs on disk

def _recipe_path(run: Run) -> str:
    return os.path.join(run.directory, "recipe.yaml")


def _checkpoint(run: Run) -> str:
    return os.path.join(run.directory, "last.pth")


def prepare_runs(study: Study) -> List[Run]:
    """Writes each run's ``recipe.yaml``; refuses a folder trained with another recipe."""
    import yaml

    runs = study.runs()
    for run in runs:
        os.makedirs(run.directory, exist_ok=True)
        wanted = config_to_dict(run.config)
        path = _recipe_path(run)
        if os.path.isfile(path):
            with open(path, "r", encoding="utf-8") as f:
                existing = yaml.safe_load(f)
            if existing != wanted and os.path.isfile(_checkpoint(run)):
                changed = sorted(_differences(existing or {}, wanted))
                raise StudyError(
                    f"{run.directory} was trained with another recipe (differs in "
                    f"{', '.join(changed[:6])}); use another output_dir or delete that folder")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(wanted, f, sort_keys=False)
    return runs


def _differences(a: Dict, b: Dict, prefix: str = "") -> List[str]:
    keys = set(a) | set(b)
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def trained_iterations(path: str) -> int:
    """The iteration a training checkpoint reached (0 if there is none)."""
    if not os.path.isfile(path):
        return 0
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_TAG or "training" not in obj:
        raise StudyError(f"{path!r} is not a training checkpoint of this project; "
                         f"delete it to train that run again")
    return int(obj["training"]["iteration"])


def _is_finished(run: Run) -> bool:
    done = os.path.join(run.directory, "done.json")
    if os.path.isfile(done):
        with open(done, encoding="utf-8") as f:
            record = json.load(f)
        if (record.get("iterations") == run.config.train.iterations
                and os.path.isfile(_checkpoint(run))
                and record.get("sha256") == file_sha256(_checkpoint(run))):
            return True
    # trained elsewhere (torchrun with the run's recipe.yaml): the checkpoint says so
    return trained_iterations(_checkpoint(run)) >= run.config.train.iterations


def _train(run: Run) -> float:
    """Trains (or resumes) one run to its last iteration; returns the seconds it took."""
    from .engine import train

    start = time.perf_counter()
    train(run.config, resume=True)
    seconds = time.perf_counter() - start
    record = {"iterations": run.config.train.iterations,
              "sha256": file_sha256(_checkpoint(run)), "train_seconds": seconds,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(os.path.join(run.directory, "done.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    return seconds


# --------------------------------------------------------------------------- scoring

def evaluate_checkpoint(checkpoint: str, study: Study) -> Dict:
    """The checkpoint's figures on the study's held-out frames, as ``eval-weights`` gives
    them: the Segmenter (torch backend), then the one metric."""
    from ..evaluation.weights_eval import confusion_over_pairs, folder_pairs, generated_pairs
    from ..inference import Segmenter

    held = study.evaluate
    if held.source == "folder":
        pairs = folder_pairs(held.folder, limit=held.frames)
    elif held.source == "val":
        pairs = _val_pairs(study, held.frames)
    else:
        pairs = generated_pairs(held.frames, held.size, held.seed)
    segmenter = Segmenter.from_checkpoint(
        checkpoint, backend="torch", device=held.device,
        input_size=tuple(held.input_size) if held.input_size else "checkpoint")
    cm = confusion_over_pairs(segmenter, pairs)
    summary = cm.summary(segmenter.metadata.class_names)
    return {"miou": summary["miou"], "pixel_accuracy": summary["pixel_accuracy"],
            "per_class_iou": {n: c["iou"] for n, c in summary["per_class"].items()},
            "evaluated_pixels": summary["evaluated_pixels"],
            "input_size": list(segmenter.input_size) if segmenter.input_size else None}


def _val_pairs(study: Study, frames: Optional[int]):
    """(RGB, trainIds) pairs of the recipe's validation split, the first ``frames``."""
    from .config import config_from_dict
    from .datasets import build_dataset

    dataset = build_dataset(config_from_dict(study.recipe).data, "val", None)
    count = len(dataset) if frames is None else min(frames, len(dataset))
    return (dataset.load(i) for i in range(count))


def _scored(run: Run, study: Study) -> Dict:
    """The run's held-out figures, from ``eval.json`` when the checkpoint has not changed."""
    path = os.path.join(run.directory, "eval.json")
    sha = file_sha256(_checkpoint(run))
    held = config_to_dict(study.evaluate)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("sha256") == sha and cached.get("held_out") == held:
            return cached
    figures = evaluate_checkpoint(_checkpoint(run), study)
    figures.update(sha256=sha, held_out=held)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=2)
    return figures


# ---------------------------------------------------------------------------- the study

def _load_record(run: Run) -> Dict:
    path = os.path.join(run.directory, "done.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {}


def run_study(study: Study, *, train_missing: bool = True, measure_latency: bool = True,
              say: Callable[[str], None] = print) -> Dict:
    """Trains what is not finished, scores every finished run, writes the report.

    Returns the report (``ablation.json``'s content). On Ctrl-C the report of the runs
    finished so far is written (without latency) and KeyboardInterrupt is raised again.
    """
    from .ablation_report import measure_variants, write_report

    started = time.time()
    runs = prepare_runs(study)
    finished: Dict[int, Dict] = {}
    interrupted = False
    try:
        for i, run in enumerate(runs, start=1):
            if _is_finished(run):
                say(f"[{i}/{len(runs)}] {run.label}: finished earlier")
            elif train_missing:
                say(f"[{i}/{len(runs)}] {run.label}: training {run.config.train.iterations} "
                    f"iterations in {run.directory}")
                _train(run)
            else:
                say(f"[{i}/{len(runs)}] {run.label}: not trained (skipped)")
                continue
            figures = _scored(run, study)
            finished[i] = {"run": run, "figures": figures, "record": _load_record(run)}
            say(f"[{i}/{len(runs)}] {run.label}: held-out mIoU {figures['miou']:.4f}")
    except KeyboardInterrupt:
        interrupted = True
        say(f"interrupted: {len(finished)} of {len(runs)} runs finished; writing their report")
    latency = measure_variants(study, [f["run"] for f in finished.values()],
                               measure_latency=measure_latency and not interrupted, say=say)
    report = write_report(study, runs, list(finished.values()), latency,
                          started=started, interrupted=interrupted)
    say(f"wrote {os.path.join(study.output_dir, 'ablation.md')} (and ablation.json, "
        f"ablation.png)")
    if interrupted:
        raise KeyboardInterrupt
    return report


def checkpoint_for(study: Study, variant: str, seed: Optional[int] = None) -> str:
    """The checkpoint of one run of the study (the first seed by default)."""
    seed = study.seeds[0] if seed is None else seed
    return os.path.join(study.output_dir, "runs", variant, f"seed{seed}", "last.pth")
