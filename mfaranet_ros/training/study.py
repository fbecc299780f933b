"""An ablation study's description: one base recipe, the seeds, the variants, the measures.

A study YAML::

    output_dir: out/ablation
    base: config/train_synthetic.yaml   # a training recipe (optional; else the defaults)
    recipe: {train: {iterations: 150}}  # merged over the base, the same for every run
    seeds: [0, 1]
    reference: full                     # the row the others are compared with (default: first)
    evaluate: {frames: 16, size: [128, 256], seed: 1000, input_size: [128, 256]}
    latency: {backend: torch, input_size: [128, 256], iterations: 20, warmup: 3}
    variants:
      - {name: full}                                  # the paper's model
      - {name: fpn, architecture: {aggregation: fpn}}

Every (variant, seed) pair becomes one training recipe: the merged recipe with that
seed, that architecture and its own ``output_dir``; nothing else differs between runs.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .config import (
    ArchitectureConfig,
    ConfigError,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)

__all__ = ["HELD_OUT_SOURCES", "HeldOutConfig", "LatencyConfig", "Run", "Study", "Variant",
           "load_study"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_STUDY_KEYS = ("output_dir", "base", "recipe", "seeds", "reference", "evaluate", "latency",
               "variants")


HELD_OUT_SOURCES = ("generated", "folder", "val")


@dataclass
class HeldOutConfig:
    """The held-out frames every checkpoint is scored on (``source``): ``generated`` scenes
    ``frames`` x ``size`` from ``seed``; an image/label ``folder`` (as ``mfaranet synth``
    writes one); or ``val``, the recipe's validation split (``data.val``: Cityscapes'
    ``val``...). ``frames`` caps a folder or split (null: all of it)."""

    source: str = "generated"
    frames: Optional[int] = 16
    size: Tuple[int, int] = (128, 256)
    seed: int = 1000
    folder: Optional[str] = None
    input_size: Optional[Tuple[int, int]] = None   # network input; null: the checkpoint's
    device: Optional[str] = None                   # null: CUDA if present, else CPU

    def __post_init__(self) -> None:
        if self.source not in HELD_OUT_SOURCES:
            raise ConfigError(f"evaluate.source {self.source!r} is unknown; use one of "
                              f"{', '.join(HELD_OUT_SOURCES)}")
        if self.frames is not None and self.frames < 1:
            raise ConfigError(f"evaluate.frames must be >= 1, got {self.frames}")
        if self.source == "generated" and self.frames is None:
            raise ConfigError("evaluate.frames: generated scenes need a number of frames")
        if self.source == "folder" and not self.folder:
            raise ConfigError("evaluate.folder: source folder needs the folder's path")


@dataclass
class LatencyConfig:
    """How every variant's latency is measured: the Segmenter on ``backend``, one frame at
    ``input_size``, ``warmup`` + ``iterations`` calls, the variants taking turns."""

    backend: str = "torch"
    device: Optional[str] = None
    input_size: Tuple[int, int] = (128, 256)
    iterations: int = 20
    warmup: int = 3
    threads: int = 1       # torch threads (0: PyTorch's choice)

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.warmup < 0:
            raise ConfigError("latency.iterations must be >= 1 and latency.warmup >= 0")


@dataclass
class Variant:
    """A row of the study. ``backbone_weights`` replaces the recipe's ImageNet file
    (``model.backbone``) for this variant: a deeper encoder needs its own."""

    name: str
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    backbone_weights: Optional[str] = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"variant name {self.name!r}: use letters, digits, '_', '-', "
                              f"'.', '+' (it names a folder)")

    @property
    def parts(self) -> Dict[str, str]:
        return dataclasses.asdict(self.architecture)


@dataclass
class Run:
    """One training run: a variant with a seed, in its own folder."""

    variant: Variant
    seed: int
    config: TrainConfig

    @property
    def directory(self) -> str:
        return self.config.output_dir

    @property
    def label(self) -> str:
        return f"{self.variant.name} seed {self.seed}"


@dataclass
class Study:
    path: str
    output_dir: str
    base: Optional[str]
    recipe: Dict[str, Any]          # the merged training recipe, before per-run fields
    seeds: List[int]
    reference: str
    evaluate: HeldOutConfig
    latency: LatencyConfig
    variants: List[Variant]

    def runs(self) -> List[Run]:
        """Every (variant, seed), variants in order, the first seed of each first."""
        out = []
        for seed in self.seeds:
            for variant in self.variants:
                values = copy.deepcopy(self.recipe)
                values["seed"] = seed
                values["output_dir"] = os.path.join(self.output_dir, "runs", variant.name,
                                                    f"seed{seed}")
                values["model"]["architecture"] = variant.parts
                if variant.backbone_weights:
                    values["model"]["backbone"] = variant.backbone_weights
                values["metadata"]["source"] = (f"mfaranet ablate {os.path.basename(self.path)}: "
                                                f"variant {variant.name}, seed {seed}")
                out.append(Run(variant, seed, config_from_dict(values)))
        return out


def _merge(base: Dict[str, Any], over: Mapping[str, Any], where: str = "recipe") -> Dict:
    """``over`` merged into a copy of ``base``: mappings key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if key not in out:
            raise ConfigError(f"unknown config key {where}.{key}; "
                              f"{where} has: {', '.join(map(str, out))}")
        if isinstance(value, Mapping) and isinstance(out[key], dict):
            out[key] = _merge(out[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def _resolve(path: str, study_path: str) -> str:
    """A path as written (from the working directory), else next to the study file."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(study_path)), path)
    return beside if os.path.exists(beside) else path


def _section(values: Mapping[str, Any], key: str, kind: type) -> Any:
    return config_from_dict(values.get(key) or {}, kind, key)


def load_study(path: str, output_dir: Optional[str] = None,
               overrides: Sequence[Tuple[str, Any]] = ()) -> Study:
    """Reads and checks a study YAML; every run's recipe is built once here, so a bad key
    fails before anything trains. ``overrides``: ``("train.iterations", 60)`` pairs set in
    the study's recipe (what ``mfaranet ablate --set`` passes)."""
    import yaml

    try:
        with open(path, "r", encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read the study {path!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path}: a study is a mapping with keys {', '.join(_STUDY_KEYS)}")
    unknown = sorted(set(values) - set(_STUDY_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown study keys {unknown}; a study has: "
                          f"{', '.join(_STUDY_KEYS)}")
    try:
        study = _study_from(values, path, output_dir, overrides)
        study.runs()   # every run's recipe must build
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return study


def _nested(key: str, value: Any) -> Dict[str, Any]:
    for part in reversed(key.split(".")[1:]):
        value = {part: value}
    return {key.split(".")[0]: value}


def _study_from(values: Mapping[str, Any], path: str, output_dir: Optional[str],
                overrides: Sequence[Tuple[str, Any]] = ()) -> Study:
    base_path = values.get("base")
    base = load_config(_resolve(base_path, path)) if base_path else TrainConfig()
    recipe = values.get("recipe") or {}
    if not isinstance(recipe, Mapping):
        raise ConfigError("recipe: expected a mapping of training-recipe sections")
    merged = _merge(config_to_dict(base), recipe)
    for key, value in overrides:
        merged = _merge(merged, _nested(key, value))
    config_from_dict(merged)
    seeds = values.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise ConfigError(f"seeds: expected a list of distinct integers, got {seeds!r}")
    raw_variants = values.get("variants")
    if not isinstance(raw_variants, list) or not raw_variants:
        raise ConfigError("variants: expected a list of {name, architecture} mappings")
    variants = [config_from_dict(v, Variant, f"variants[{i}]")
                for i, v in enumerate(raw_variants)]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variants: names must be distinct, got {names}")
    reference = values.get("reference", names[0])
    if reference not in names:
        raise ConfigError(f"reference {reference!r} is not a variant; variants: {names}")
    held = _section(values, "evaluate", HeldOutConfig)
    if held.source == "val" and not merged["data"].get("val"):
        raise ConfigError("evaluate.source val: the recipe has no validation split (data.val)")
    return Study(
        path=path,
        output_dir=output_dir or str(values.get("output_dir") or "out/ablation"),
        base=base_path,
        recipe=merged,
        seeds=list(seeds),
        reference=reference,
        evaluate=held,
        latency=_section(values, "latency", LatencyConfig),
        variants=variants,
    )
