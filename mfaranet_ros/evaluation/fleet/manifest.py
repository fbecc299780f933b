"""The fleet manifest: which bags, with which topics, tags and frames or times to skip.

YAML (or JSON)::

    defaults: {image_topic: /camera/image_raw, label_topic: /camera/labels}
    ignore_index: 255          # ground-truth value left out of every figure
    label_map: label_maps/autoware.yaml   # score over a consumer's classes (eval-bag's)
    unit_frames: 500           # split longer bags into windows of this many frames
    max_failed_units: 10       # give up (exit 2) past this many failed units
    bags:
      - path: drives/2024-*/     # a path or a glob
        tags: [city, rain]
        skip_first: 10          # frames
        skip_last: 0
        skip_time: [[0, 5.0], [120.5, 131]]   # seconds from the bag's start, [from, to)
        label_topic: /front/labels

``skip_time`` windows count from the start of the recording (the first message of the bag,
the "Start" of ``ros2 bag info``; the offset ``ros2 bag play --start-offset`` takes), by
each image's receive time in the bag: a frame at ``from <= t < to`` is skipped.

Every problem is one :class:`ManifestError` line naming the field.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["ManifestError", "BagEntry", "Manifest", "load_manifest", "manifest_from_bags"]


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the field."""


@dataclass
class BagEntry:
    """One bag of the fleet and how to read it."""

    path: str
    image_topic: Optional[str] = None
    label_topic: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    skip_first: int = 0
    skip_last: int = 0
    skip_time: List[Tuple[float, float]] = field(default_factory=list)


@dataclass
class Manifest:
    bags: List[BagEntry]
    ignore_index: int = 255
    unit_frames: Optional[int] = None
    max_failed_units: Optional[int] = None
    label_map: str = ""        # a label map file ("" = the model's classes)
    source: Dict = field(default_factory=dict)    # the manifest as read, for provenance


_BAG_KEYS = {"path", "image_topic", "label_topic", "tags", "skip_first", "skip_last",
             "skip_time"}
_TOP_KEYS = {"bags", "defaults", "ignore_index", "unit_frames", "max_failed_units",
             "label_map"}


def check_fields(data, known, where: str, expected: str) -> None:
    """``data`` is a mapping with only ``known`` keys; else one line naming ``where``."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected {expected}")
    unknown = set(data) - set(known)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {sorted(unknown)}; "
                            f"known: {sorted(known)}")


def _int_field(value, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ManifestError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _windows(value, where: str) -> List[Tuple[float, float]]:
    """``skip_time``: a list of ``[from, to]`` pairs of seconds, ``0 <= from < to``."""
    if not isinstance(value, list):
        raise ManifestError(f"{where}: expected a list of [from, to] pairs of seconds, "
                            f"got {value!r}")
    windows = []
    for j, pair in enumerate(value):
        numbers = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
        if not numbers or not 0 <= pair[0] < pair[1]:
            raise ManifestError(f"{where}[{j}]: expected [from, to] seconds with "
                                f"0 <= from < to, got {pair!r}")
        windows.append((float(pair[0]), float(pair[1])))
    return windows


def _expand(path: str, base: Path, where: str) -> List[str]:
    """A path or glob, relative to the manifest's folder; at least one match."""
    full = path if Path(path).is_absolute() else str(base / path)
    if any(ch in path for ch in "*?["):
        found = sorted(glob.glob(full))
        if not found:
            raise ManifestError(f"{where}: the glob {path!r} matches nothing")
        return found
    if not Path(full).exists():
        raise ManifestError(f"{where}: {path!r} does not exist")
    return [full]


def _entries(item, index: int, defaults: Dict, base: Path) -> List[BagEntry]:
    where = f"bags[{index}]"
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict) or "path" not in item:
        raise ManifestError(f"{where}: expected a path or a mapping with 'path'")
    unknown = set(item) - _BAG_KEYS
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {sorted(unknown)}; "
                            f"known: {sorted(_BAG_KEYS)}")
    tags = item.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ManifestError(f"{where}.tags: expected a list of strings, got {tags!r}")
    merged = {**defaults, **item}
    return [BagEntry(path=p, image_topic=merged.get("image_topic"),
                     label_topic=merged.get("label_topic"), tags=list(tags),
                     skip_first=_int_field(merged.get("skip_first", 0),
                                           f"{where}.skip_first", 0),
                     skip_last=_int_field(merged.get("skip_last", 0), f"{where}.skip_last", 0),
                     skip_time=_windows(merged.get("skip_time", []), f"{where}.skip_time"))
            for p in _expand(str(item["path"]), base, f"{where}.path")]


def parse_manifest(data, base: Path) -> Manifest:
    """A :class:`Manifest` from the parsed YAML; paths relative to ``base``."""
    check_fields(data, _TOP_KEYS, "manifest", "a mapping with 'bags'")
    items = data.get("bags")
    if not isinstance(items, list) or not items:
        raise ManifestError("bags: expected a non-empty list of bags")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - (_BAG_KEYS - {"path", "tags"}):
        raise ManifestError("defaults: expected a mapping of image_topic, label_topic, "
                            "skip_first, skip_last, skip_time")
    bags = [e for i, item in enumerate(items) for e in _entries(item, i, defaults, base)]
    unit = data.get("unit_frames")
    limit = data.get("max_failed_units")
    label_map = data.get("label_map") or ""
    if not isinstance(label_map, str):
        raise ManifestError(f"label_map: expected a path, got {label_map!r}")
    if label_map and not Path(label_map).is_absolute() and (base / label_map).exists():
        label_map = str(base / label_map)    # else: the package's config/ (label_maps/...)
    return Manifest(
        bags=bags, ignore_index=_int_field(data.get("ignore_index", 255), "ignore_index", 0),
        unit_frames=None if unit is None else _int_field(unit, "unit_frames", 1),
        max_failed_units=None if limit is None else _int_field(limit, "max_failed_units", 0),
        label_map=label_map, source=data)


def load_manifest(path) -> Manifest:
    """Reads and checks a manifest file (YAML or JSON)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ManifestError(f"manifest {str(path)!r}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"manifest {str(path)!r} is not valid YAML: "
                            f"{str(exc).splitlines()[0]}") from None
    return parse_manifest(data, path.parent)


def manifest_from_bags(paths: Sequence[str], image_topic: Optional[str],
                       label_topic: Optional[str]) -> Manifest:
    """The manifest of a plain list of bags, with the command line's topics."""
    defaults = {k: v for k, v in (("image_topic", image_topic),
                                  ("label_topic", label_topic)) if v}
    return parse_manifest({"bags": list(paths), "defaults": defaults}, Path.cwd())
