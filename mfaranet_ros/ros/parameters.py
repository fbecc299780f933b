"""The node's parameters: one table, declared with descriptors, validated in one place.

The table is the single source of truth: the node declares exactly these, the
shipped ``config/segment.yaml`` must carry exactly these keys, and the launch file only
overrides names from it (test/test_launch_config.py checks both).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..inference.backends import BACKENDS, PRECISIONS
from ..model.weights import DEFAULT_WEIGHTS, package_models_dir, resolve_weights

__all__ = [
    "ParamSpec",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "NodeConfig",
    "validate_parameter",
    "resolve_weights",
    "package_models_dir",
]

TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("auto", "reliable", "best_effort")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. ``default=None`` with a list ``kind`` means "unset = empty"."""

    name: str
    kind: str  # "string" | "bool" | "integer" | "double" | "integer_array" | "string_array"
    default: Any
    description: str
    read_only: bool = True
    choices: Tuple[str, ...] = ()
    int_range: Optional[Tuple[int, int]] = None
    float_range: Optional[Tuple[float, float]] = None
    constraints: str = ""


PARAMETERS: Tuple[ParamSpec, ...] = (
    ParamSpec("weights", "string", DEFAULT_WEIGHTS,
              "Checkpoint file; a relative path resolves against the package's models/ "
              "directory (then the working directory)."),
    ParamSpec("backend", "string", "auto", "Inference backend.", choices=BACKENDS),
    ParamSpec("device", "string", "",
              "Device, e.g. 'cpu', 'cuda', 'cuda:1'; empty = CUDA when available, else CPU.",
              constraints="empty, 'cpu', 'cuda' or 'cuda:N'"),
    ParamSpec("precision", "string", "fp32", "Inference precision.", choices=PRECISIONS),
    ParamSpec("input_size", "integer_array", None,
              "Network input [H, W]; frames are letterboxed into it and the results mapped "
              "back to each frame's size. Empty = every frame at full resolution.",
              constraints="empty or two integers >= 32"),
    ParamSpec("pruned", "bool", False, "Load the pruned variant of the network."),
    ParamSpec("input_transport", "string", "raw",
              "raw: subscribe to 'image' (sensor_msgs/Image); compressed: "
              "'image/compressed' (sensor_msgs/CompressedImage, jpeg or png).",
              choices=TRANSPORTS),
    ParamSpec("cameras", "string_array", None,
              "Camera names; for each name c the node subscribes to c/image and publishes "
              "c/labels, c/color, c/overlay, c/latency, batching all cameras through one "
              "model. Empty = one camera on 'image' with outputs under ~/.",
              constraints="distinct valid topic tokens"),
    ParamSpec("publish_labels", "bool", True, "Publish the label image (mono8 trainIds).",
              read_only=False),
    ParamSpec("publish_color", "bool", True, "Publish the colorized mask (rgb8).",
              read_only=False),
    ParamSpec("publish_overlay", "bool", True, "Publish the overlay on the camera image (rgb8).",
              read_only=False),
    ParamSpec("overlay_alpha", "double", 0.5, "Weight of the mask in the overlay.",
              read_only=False, float_range=(0.0, 1.0)),
    ParamSpec("qos_reliability", "string", "auto",
              "Input reliability. auto: reliable when every publisher of the image topic "
              "offers reliable, best effort otherwise, re-adapted when publishers change.",
              choices=RELIABILITIES),
    ParamSpec("qos_depth", "integer", 1,
              "History depth (KEEP_LAST) of the input subscription and the outputs.",
              int_range=(1, 100)),
    ParamSpec("engine_cache_dir", "string", "",
              "Where compiled engines / exported models are cached; empty = the default "
              "per-user cache directory."),
)

PARAMETER_NAMES: Tuple[str, ...] = tuple(p.name for p in PARAMETERS)
_SPECS: Dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}

_PY_TYPES = {
    "string": (str,),
    "bool": (bool,),
    "integer": (int,),
    "double": (float, int),
}


def _valid_token(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(
        c.isalnum() or c in "_/" for c in name) and "//" not in name and not name.endswith("/")


def validate_parameter(name: str, value: Any) -> Optional[str]:
    """The reason ``value`` is refused for parameter ``name``, or None when it is fine."""
    spec = _SPECS.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    if spec.kind in _PY_TYPES:
        if isinstance(value, bool) and spec.kind != "bool":
            return f"{name}: expected {spec.kind}, got bool"
        if not isinstance(value, _PY_TYPES[spec.kind]):
            return f"{name}: expected {spec.kind}, got {type(value).__name__}"
    if spec.choices and value not in spec.choices:
        return f"{name}: {value!r} is not one of {', '.join(spec.choices)}"
    if spec.int_range and not spec.int_range[0] <= value <= spec.int_range[1]:
        return f"{name}: {value} outside [{spec.int_range[0]}, {spec.int_range[1]}]"
    if spec.float_range and not spec.float_range[0] <= value <= spec.float_range[1]:
        return f"{name}: {value} outside [{spec.float_range[0]}, {spec.float_range[1]}]"
    if name == "weights" and not str(value).strip():
        return "weights: empty path"
    if name == "device":
        v = str(value)
        if v not in ("", "cpu", "cuda") and not (
                v.startswith("cuda:") and v[5:].isdigit()):
            return f"device: {v!r} is not empty, 'cpu', 'cuda' or 'cuda:N'"
    if name == "input_size" and value is not None:
        size = list(value)
        if size and (len(size) != 2 or min(size) < 32):
            return f"input_size: expected empty or [H, W] with both >= 32, got {size}"
    if name == "cameras" and value is not None:
        names = list(value)
        bad = [c for c in names if not _valid_token(c)]
        if bad:
            return f"cameras: invalid camera names {bad} (letters, digits, '_' and '/')"
        if len(set(names)) != len(names):
            return f"cameras: duplicate names in {names}"
    return None


@dataclass
class NodeConfig:
    """The validated parameter values the node starts with."""

    weights: str = DEFAULT_WEIGHTS
    backend: str = "auto"
    device: str = ""
    precision: str = "fp32"
    input_size: Optional[List[int]] = None
    pruned: bool = False
    input_transport: str = "raw"
    cameras: List[str] = field(default_factory=list)
    publish_labels: bool = True
    publish_color: bool = True
    publish_overlay: bool = True
    overlay_alpha: float = 0.5
    qos_reliability: str = "auto"
    qos_depth: int = 1
    engine_cache_dir: str = ""

    @classmethod
    def from_values(cls, values: Dict[str, Any]) -> "NodeConfig":
        """Validate every value; raises ValueError listing all the problems."""
        problems = [r for r in (validate_parameter(k, v) for k, v in values.items()) if r]
        if problems:
            raise ValueError("; ".join(problems))
        cfg = cls(**{k: v for k, v in values.items() if v is not None})
        cfg.input_size = list(cfg.input_size) if cfg.input_size else None
        cfg.cameras = list(cfg.cameras or [])
        cfg.overlay_alpha = float(cfg.overlay_alpha)
        return cfg


def topic_layout(cameras: Sequence[str], transport: str) -> List[Tuple[str, str, str]]:
    """(camera key, input topic, output prefix) per input, relative to the node."""
    suffix = "image/compressed" if transport == "compressed" else "image"
    if not cameras:
        return [("", suffix, "~/")]
    return [(c, f"{c}/{suffix}", f"{c}/") for c in cameras]
