"""The node's parameters: one table, declared with descriptors, validated in one place.

The table is the single source of truth: the node declares exactly these, the
shipped ``config/segment.yaml`` must carry exactly these keys, and the launch file only
overrides names from it (test/test_launch_config.py checks both). Pure Python: the
declaration on an rclpy node is :mod:`.node_parameters`.
"""
from __future__ import annotations

import array
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..cli_args import MIN_NETWORK_SIZE
from ..label_formats import LABEL_FORMATS, LABEL_RESOLUTIONS
from ..model.weights import DEFAULT_WEIGHTS, package_models_dir, resolve_weights
from ..names import BACKENDS, CHECKPOINT_SIZE, DEFAULT_PRECISION, PRECISION_CHOICES, InputSize

__all__ = [
    "ParamSpec",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "NodeConfig",
    "CHECKPOINT_SIZE",
    "input_size_request",
    "validate_parameter",
    "resolve_weights",
    "package_models_dir",
]

TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("auto", "reliable", "best_effort")
PUBLISH_OVERLAPS = ("auto", "always", "never")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. A list ``kind`` has an empty tuple as its default (empty is a value)."""

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
    ParamSpec("precision", "string", DEFAULT_PRECISION,
              "Inference precision; auto: the fastest this machine has units for whose "
              "labels agree with fp32's on >= 99.5 % of the pixels, measured at start-up.",
              choices=PRECISION_CHOICES),
    ParamSpec("input_size", "integer_array", (),
              "Network input [H, W]; frames are letterboxed into it and the results mapped "
              "back to each frame's size. Empty = the input size recorded in the checkpoint "
              "(full resolution when it records none); [0, 0] = every frame at full "
              "resolution.",
              constraints="[], [0, 0] or two integers >= 32"),
    ParamSpec("pruned", "bool", False, "Load the pruned variant of the network."),
    ParamSpec("input_transport", "string", "raw",
              "raw: subscribe to 'image' (sensor_msgs/Image); compressed: "
              "'image/compressed' (sensor_msgs/CompressedImage, jpeg or png).",
              choices=TRANSPORTS),
    ParamSpec("cameras", "string_array", (),
              "Camera names; for each name c the node subscribes to c/image (or "
              "c/image/compressed) and c/camera_info beside it, and publishes ~/c/labels, "
              "~/c/color, ~/c/overlay, ~/c/confidence, ~/c/label_info, ~/c/camera_info and "
              "~/c/latency, batching all cameras through one model. Empty = one camera on "
              "'image' with those outputs directly under ~/.",
              constraints="distinct valid topic tokens"),
    ParamSpec("publish_labels", "bool", True, "Publish the label image (mono8 trainIds).",
              read_only=False),
    ParamSpec("publish_color", "bool", True, "Publish the colorized mask (rgb8).",
              read_only=False),
    ParamSpec("publish_overlay", "bool", True, "Publish the overlay on the camera image (rgb8).",
              read_only=False),
    ParamSpec("label_map", "string", "",
              "YAML label map (model classes -> output ids, names, colours) applied to the "
              "labels and ~/label_info; a relative path resolves against the package's "
              "config/ (e.g. label_maps/autoware.yaml). Empty = the model's own classes."),
    ParamSpec("label_format", "string", "mono8",
              "Format of the labels output: mono8 (one class id per pixel) or autoware_rle "
              "(Autoware's run-length records: uint8 id + little-endian int32 length).",
              choices=LABEL_FORMATS),
    ParamSpec("label_resolution", "string", "camera",
              "Size of labels, color, overlay, confidence and camera_info: camera (the "
              "camera image's) or network (the network's scale, nothing upscaled: the "
              "camera image's region of the letterboxed input; cheaper).",
              choices=LABEL_RESOLUTIONS),
    ParamSpec("publish_overlap", "string", "auto",
              "always: publish a batch's outputs on a thread of their own while the next "
              "batch is segmented (a shorter frame period when inference leaves the CPU "
              "free); never: publish, then take the next batch; auto: always where inference "
              "runs on a GPU, never on the CPU (where inference uses every core).",
              choices=PUBLISH_OVERLAPS),
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
    "double": (float, int),  # an integer for a decimal is that number (1 -> 1.0)
}
_ITEM_TYPES = {"integer_array": int, "string_array": str}
_KIND_WORDS = {"string": "a string", "bool": "true or false", "integer": "an integer",
               "double": "a number", "integer_array": "a list of integers",
               "string_array": "a list of strings"}

#: ``input_size_request`` for ``input_size: []``: the size recorded in the checkpoint
def _valid_token(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(
        c.isalnum() or c in "_/" for c in name) and "//" not in name and not name.endswith("/")


def _type_problem(spec: ParamSpec, value: Any) -> Optional[str]:
    shown = list(value) if isinstance(value, array.array) else value
    expected = f"{spec.name}: expected {_KIND_WORDS[spec.kind]}, got {shown!r}"
    if spec.kind in _ITEM_TYPES:
        item = _ITEM_TYPES[spec.kind]
        if not isinstance(value, (list, tuple, array.array)) or not all(
                isinstance(v, item) and not isinstance(v, bool) for v in value):
            return expected
        return None
    if isinstance(value, bool) and spec.kind != "bool":
        return expected
    if not isinstance(value, _PY_TYPES[spec.kind]):
        return expected
    return None


def _range_problem(spec: ParamSpec, value: Any) -> Optional[str]:
    for bounds in (spec.int_range, spec.float_range):
        if bounds and not bounds[0] <= value <= bounds[1]:
            return f"{spec.name}: {value} is outside [{bounds[0]}, {bounds[1]}]"
    return None


def _value_problem(name: str, value: Any) -> Optional[str]:
    """The checks a descriptor cannot express."""
    if name == "weights" and not str(value).strip():
        return "weights: empty path (give a checkpoint file)"
    if name == "device":
        v = str(value)
        if v not in ("", "cpu", "cuda") and not (v.startswith("cuda:") and v[5:].isdigit()):
            return f"device: {v!r} is not empty, 'cpu', 'cuda' or 'cuda:N'"
    if name == "input_size":
        size = list(value)
        if size not in ([], [0, 0]) and (len(size) != 2 or min(size) < MIN_NETWORK_SIZE):
            return (f"input_size: expected [] (the checkpoint's size), [0, 0] (full "
                    f"resolution) or [H, W] with both >= {MIN_NETWORK_SIZE}, got {size}")
    if name == "cameras":
        names = list(value)
        bad = [c for c in names if not _valid_token(c)]
        if bad:
            return f"cameras: invalid camera names {bad} (letters, digits, '_' and '/')"
        if len(set(names)) != len(names):
            return f"cameras: duplicate names in {names}"
    return None


def validate_parameter(name: str, value: Any) -> Optional[str]:
    """The reason ``value`` is refused for parameter ``name`` (one line naming the
    parameter, the value and what is allowed), or None when it is fine."""
    spec = _SPECS.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    problem = _type_problem(spec, value)
    if problem and spec.choices and isinstance(value, bool):
        return (f"{problem} (YAML reads on/off, yes/no, true/false as a boolean): give one "
                f"of {', '.join(spec.choices)}")
    if problem:
        return problem
    if spec.choices and value not in spec.choices:
        return f"{name}: {value!r} is not one of {', '.join(spec.choices)}"
    return _range_problem(spec, value) or _value_problem(name, value)


def input_size_request(size: Sequence[int]) -> InputSize:
    """What ``input_size`` asks for: :data:`CHECKPOINT_SIZE` (``[]``), None = full
    resolution (``[0, 0]``), or ``(H, W)``."""
    size = [int(v) for v in size]
    if not size:
        return CHECKPOINT_SIZE
    if size == [0, 0]:
        return None
    return size[0], size[1]


def _default(name: str):
    """A :class:`NodeConfig` field whose default is the table's (one definition): a list
    parameter's ``()`` becomes a fresh empty list."""
    value = _SPECS[name].default
    if isinstance(value, tuple):
        return field(default_factory=list)
    return field(default=value)


@dataclass
class NodeConfig:
    """The validated parameter values the node starts with; the defaults are
    :data:`PARAMETERS`' (a test checks that every parameter has its field)."""

    weights: str = _default("weights")
    backend: str = _default("backend")
    device: str = _default("device")
    precision: str = _default("precision")
    input_size: List[int] = _default("input_size")   # [] checkpoint, [0, 0] full
    pruned: bool = _default("pruned")
    input_transport: str = _default("input_transport")
    cameras: List[str] = _default("cameras")
    publish_labels: bool = _default("publish_labels")
    publish_color: bool = _default("publish_color")
    publish_overlay: bool = _default("publish_overlay")
    label_map: str = _default("label_map")
    label_format: str = _default("label_format")
    label_resolution: str = _default("label_resolution")
    publish_overlap: str = _default("publish_overlap")
    overlay_alpha: float = _default("overlay_alpha")
    qos_reliability: str = _default("qos_reliability")
    qos_depth: int = _default("qos_depth")
    engine_cache_dir: str = _default("engine_cache_dir")

    @classmethod
    def from_values(cls, values: Dict[str, Any]) -> "NodeConfig":
        """Validate every value; raises ValueError listing all the problems."""
        problems = [r for r in (validate_parameter(k, v) for k, v in values.items()) if r]
        if problems:
            raise ValueError("; ".join(problems))
        cfg = cls(**{k: v for k, v in values.items() if v is not None})
        cfg.input_size = [int(v) for v in cfg.input_size or []]
        cfg.cameras = list(cfg.cameras or [])
        cfg.overlay_alpha = float(cfg.overlay_alpha)
        return cfg


def topic_layout(cameras: Sequence[str], transport: str) -> List[Tuple[str, str, str]]:
    """(camera key, input topic, output prefix) per input, relative to the node.

    Inputs are relative to the node's namespace (``front/image``, the driver's topic with
    its ``front/camera_info`` beside it), outputs private (``~/front/labels``): no topic
    the node publishes is one it subscribes, whatever the namespace.
    """
    suffix = "image/compressed" if transport == "compressed" else "image"
    if not cameras:
        return [("", suffix, "~/")]
    return [(c, f"{c}/{suffix}", f"~/{c}/") for c in cameras]
