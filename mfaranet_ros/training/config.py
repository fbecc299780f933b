"""The typed training configuration: YAML recipes (``config/train_*.yaml``) and overrides.

A recipe is a YAML mapping with the sections of :class:`TrainConfig`; what it leaves
out keeps the defaults below. ``--set a.b=value`` overrides one value (the value is
read as YAML). A key that does not exist or a value of the wrong type is refused with
a one-line :class:`ConfigError` that names the key.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

from ..model.variants import Architecture

__all__ = [
    "ConfigError", "GeneratedSplit", "DataConfig", "ArchitectureConfig", "ModelConfig",
    "AugmentConfig", "LossConfig", "OptimConfig", "LoopConfig", "EvalConfig", "MetadataConfig",
    "TrainConfig",
    "config_from_dict", "config_to_dict", "load_config", "parse_override", "apply_overrides",
]

DATASET_TYPES = ("cityscapes", "camvid", "folder", "generated")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A recipe or override that cannot be used; the message names the key and the fix."""


@dataclass
class GeneratedSplit:
    """A split of scenes generated on the fly (``data.type: generated``)."""

    frames: int
    size: Tuple[int, int]
    seed: int = 0


@dataclass
class DataConfig:
    """Where the frames come from. ``train``/``val`` are a split name (``cityscapes``,
    ``camvid``: ``train``, ``val``, ``train+val``...), a folder (``folder``) or a
    :class:`GeneratedSplit` (``generated``); ``val: null`` skips validation."""

    type: str = "generated"
    root: Optional[str] = None
    train: Union[GeneratedSplit, str, None] = None
    val: Union[GeneratedSplit, str, None] = None
    train_limit: Optional[int] = None   # folder: use only the first N frames
    val_limit: Optional[int] = None

    def __post_init__(self) -> None:
        if self.type not in DATASET_TYPES:
            raise ConfigError(f"data.type {self.type!r} is unknown; use one of {DATASET_TYPES}")


def _check_architecture(self) -> None:
    try:
        Architecture(**dataclasses.asdict(self))
    except ValueError as exc:
        raise ConfigError(f"model.{exc}") from None


# The recipe's ``model.architecture`` section: the parts of model.variants.Architecture, with
# its defaults (the paper's model), read from it so that they are written in one place. A
# mutable copy, as every section is, that :func:`config_from_dict` reads like the others.
ArchitectureConfig = dataclasses.make_dataclass(
    "ArchitectureConfig",
    [(part.name, typing.get_type_hints(Architecture)[part.name], field(default=part.default))
     for part in dataclasses.fields(Architecture)],
    namespace={"__module__": __name__, "__post_init__": _check_architecture,
               "__doc__": "Which variant of each part (mfaranet_ros.model.variants); the "
                          "defaults are the paper's."})


@dataclass
class ModelConfig:
    num_classes: int = 19
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    backbone: Optional[str] = None        # ImageNet deep-stem file for the encoder
    init_weights: Optional[str] = None    # whole-model checkpoint to fine-tune from
    backbone_dropout: Tuple[float, float, float, float, float] = (0.0,) * 5
    use_dilation: bool = True


@dataclass
class AugmentConfig:
    base_size: Optional[Tuple[int, int]] = None   # resize every frame first ([H, W]; null: no)
    crop_size: Tuple[int, int] = (1024, 1024)
    scale_range: Tuple[float, float] = (0.5, 2.0)
    rotate_deg: float = 10.0
    rotate_p: float = 0.5
    flip_p: float = 0.5
    class_uniform_p: float = 0.0


@dataclass
class LossConfig:
    ohem_thresh: float = 0.7
    min_kept: int = 100_000
    seg_weight: float = 1.0
    edge_weight: float = 0.3
    att_weight: float = 0.1
    gate: float = 0.8


@dataclass
class OptimConfig:
    """SGD on a poly schedule; the new layers learn at ``base_lr * head_lr_mult``."""

    base_lr: float = 0.005
    head_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    power: float = 0.9


@dataclass
class LoopConfig:
    """The ``train`` section: batch, length and cadence of the loop (per process)."""

    batch_size: int = 7
    iterations: int = 42_400
    workers: int = 4
    amp: bool = True             # used on CUDA only
    channels_last: bool = False
    threads: int = 0             # torch threads per process; 0 keeps PyTorch's choice
    val_every: int = 212         # 0: no validation
    checkpoint_every: int = 212
    log_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "iterations", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class EvalConfig:
    input_size: Optional[Tuple[int, int]] = None   # validation input [H, W]; null: full frame


@dataclass
class MetadataConfig:
    dataset: str = "cityscapes"
    source: Optional[str] = None   # null: describe the run


@dataclass
class TrainConfig:
    """A whole training recipe, one section per YAML mapping."""

    output_dir: str = "out/train"
    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"device {self.device!r} is unknown; use one of {DEVICES}")


# ----------------------------------------------------------------------- dict <-> config

def _type_name(kind: Any) -> str:
    if isinstance(kind, type):
        return kind.__name__
    return str(kind).replace("typing.", "")


def _convert_scalar(kind: type, value: Any, key: str) -> Any:
    if kind is float and isinstance(value, str):
        # YAML 1.1 reads 5e-4 (no dot) as text: accept what Python reads as a number
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{key}: expected {kind.__name__}, got bool {value!r}")
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{key}: expected {kind.__name__}, got "
                          f"{type(value).__name__} {value!r}")
    return value


def _convert_tuple(args: Tuple, value: Any, key: str) -> Tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of {len(args)}, got "
                          f"{type(value).__name__} {value!r}")
    if len(value) != len(args):
        raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}: {list(value)}")
    return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))


def _convert_union(args: Tuple, value: Any, key: str) -> Any:
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key}: must not be null")
    errors = []
    for option in (a for a in args if a is not type(None)):
        try:
            return _convert(option, value, key)
        except ConfigError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    names = " or ".join(_type_name(a) for a in args if a is not type(None))
    raise ConfigError(f"{key}: expected {names}, got {type(value).__name__} {value!r}")


def _convert(kind: Any, value: Any, key: str) -> Any:
    """``value`` (from YAML) as ``kind``, or a :class:`ConfigError` naming ``key``."""
    origin = typing.get_origin(kind)
    if origin is Union:
        return _convert_union(typing.get_args(kind), value, key)
    if origin is tuple:
        return _convert_tuple(typing.get_args(kind), value, key)
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        return config_from_dict(value, kind, key)
    return _convert_scalar(kind, value, key)


def config_from_dict(values: Any, kind: type = TrainConfig, key: str = "") -> Any:
    """Builds ``kind`` (a config dataclass) from a mapping; missing keys keep the defaults."""
    where = key or "the recipe"
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got "
                          f"{type(values).__name__} {values!r}")
    hints = typing.get_type_hints(kind)
    known = [f.name for f in dataclasses.fields(kind)]
    kwargs = {}
    for name, value in values.items():
        path = f"{key}.{name}" if key else str(name)
        if name not in known:
            raise ConfigError(f"unknown config key {path!r}; {where} has: {', '.join(known)}")
        kwargs[name] = _convert(hints[name], value, path)
    try:
        return kind(**kwargs)
    except TypeError as exc:  # a required field left out (GeneratedSplit's frames, size)
        raise ConfigError(f"{where}: {exc}") from None


def config_to_dict(cfg: Any) -> Dict[str, Any]:
    """Plain dicts, lists and scalars (what YAML, JSON and ``torch.load`` read back)."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(dataclasses.asdict(cfg))


# ----------------------------------------------------------------------- recipes, overrides

def parse_override(item: str) -> Tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)`` with the value read as YAML."""
    import yaml

    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"an override is key=value (e.g. train.batch_size=4), got {item!r}")
    try:
        return key.strip(), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: the value is not YAML ({exc.problem})") from None


def apply_overrides(cfg: TrainConfig, overrides: Iterable[Tuple[str, Any]]) -> TrainConfig:
    """A new config with each ``("a.b", value)`` set; every key must already exist."""
    values = config_to_dict(cfg)
    for key, value in overrides:
        node, parts = values, key.split(".")
        for depth, part in enumerate(parts[:-1]):
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                where = ".".join(parts[:depth + 1])
                raise ConfigError(f"override {key!r}: {where!r} is not a config section")
        if parts[-1] not in node:
            where = ".".join(parts[:-1]) or "the recipe"
            raise ConfigError(f"unknown config key {key!r}; {where} has: {', '.join(node)}")
        node[parts[-1]] = value
    return config_from_dict(values)


def load_config(path: str, overrides: Iterable[Tuple[str, Any]] = ()) -> TrainConfig:
    """Reads a YAML recipe, fills in the defaults and applies ``overrides``."""
    import yaml

    try:
        with open(path, "r", encoding="utf-8") as f:
            values = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read the recipe {path!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        return apply_overrides(config_from_dict(values or {}), overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
