"""Label maps: the model's classes -> a consumer's class ids, names and colours (no ROS).

A label map is a YAML file::

    default: 0              # output id of every model class that ``mapping`` leaves out
    classes:                # the output classes, ids 0..254 (255 stays "unlabeled")
      - {id: 0, name: UNKNOWN, colour: [0, 0, 0]}
      - {id: 9, name: ROAD, colour: [128, 64, 128]}
    mapping:                # model class name -> output class name
      road: ROAD

Applying a map is one ``(256,)`` uint8 lookup table on the label image: model id ->
output id, with 255 (ignore / unlabeled) kept as 255. Without a map the model's own
classes are used unchanged (:func:`identity_label_map`).

Loading checks everything the node would otherwise trip over per frame and raises
:class:`LabelMapError` with one line naming the file and the problem.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

__all__ = [
    "LabelMapError",
    "LabelMap",
    "UNLABELED_ID",
    "UNLABELED_NAME",
    "identity_label_map",
    "label_map_for",
    "load_label_map",
    "resolve_label_map_path",
]

#: The id vision_msgs recommends for "no class" in uint8 masks, and the model's ignore id.
UNLABELED_ID = 255
UNLABELED_NAME = "unlabeled"


class LabelMapError(ValueError):
    """A label map that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class LabelMap:
    """Output classes and the model -> output lookup table.

    ``names``/``colours``: output id -> name / RGB triple; ``lut``: ``(256,)`` uint8,
    model id -> output id (255 -> 255); ``source``: the file, or ``"model"``.
    """

    names: Dict[int, str]
    colours: Dict[int, Tuple[int, int, int]]
    lut: np.ndarray
    source: str = "model"

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.lut, np.arange(256, dtype=np.uint8)))

    def apply(self, labels: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """``(H, W)`` uint8 model ids -> ``(H, W)`` uint8 output ids (the input if identity);
        ``out``: written there (e.g. a message's buffer), in one pass."""
        if out is not None:
            if self.is_identity:
                np.copyto(out, labels)
            else:
                np.take(self.lut, labels, out=out)
            return out
        if self.is_identity:
            return labels
        return self.lut[labels]

    def palette(self) -> List[List[int]]:
        """Colours indexed by output id ``0..max id`` (black where an id has no class)."""
        size = max(self.names) + 1
        return [list(self.colours.get(i, (0, 0, 0))) for i in range(size)]

    def model_palette(self, num_model_classes: int) -> List[List[int]]:
        """By model id, the colour of the output class the map sends it to: the palette
        that colours the model's labels as the mapped ones (black for no class)."""
        return [list(self.colours.get(int(self.lut[i]), (0, 0, 0)))
                for i in range(num_model_classes)]

    def class_map(self) -> List[Tuple[int, str]]:
        """``(id, name)`` pairs, sorted, ending with ``(255, "unlabeled")``: LabelInfo's map."""
        return sorted(self.names.items()) + [(UNLABELED_ID, UNLABELED_NAME)]


def identity_label_map(class_names: Sequence[str],
                       palette: Sequence[Sequence[int]]) -> LabelMap:
    """The model's own classes, unchanged (what an empty ``label_map`` means)."""
    names = {i: str(n) for i, n in enumerate(class_names)}
    colours = {i: tuple(int(c) for c in palette[i]) for i in range(len(class_names))}
    return LabelMap(names, colours, np.arange(256, dtype=np.uint8))


def resolve_label_map_path(path: str, config_dir: str) -> str:
    """``path`` as given if absolute, else relative to the package's ``config/`` folder."""
    expanded = os.path.expanduser(path)
    return expanded if os.path.isabs(expanded) else os.path.join(config_dir, expanded)


def _fail(path: str, problem: str) -> LabelMapError:
    return LabelMapError(f"label map {path}: {problem}")


def _read_yaml(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as err:
        raise _fail(path, f"cannot be read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise _fail(path, f"is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise _fail(path, "expected a mapping with 'classes' and 'mapping'")
    return doc


def _int_in(value: Any, low: int, high: int) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _output_classes(path: str, entries: Any) -> Tuple[Dict[int, str],
                                                      Dict[int, Tuple[int, int, int]]]:
    if not isinstance(entries, list) or not entries:
        raise _fail(path, "'classes' must be a non-empty list of {id, name, colour}")
    names: Dict[int, str] = {}
    colours: Dict[int, Tuple[int, int, int]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or "id" not in entry or "name" not in entry:
            raise _fail(path, f"class entry {entry!r} needs 'id' and 'name'")
        class_id = _int_in(entry["id"], 0, UNLABELED_ID - 1)
        if class_id is None:
            raise _fail(path, f"class id {entry['id']!r} is out of range 0..254 "
                              f"(255 is reserved for unlabeled)")
        name = str(entry["name"])
        if class_id in names:
            raise _fail(path, f"duplicate class id {class_id} ({names[class_id]!r} and {name!r})")
        if name in names.values():
            raise _fail(path, f"duplicate class name {name!r}")
        colour = entry.get("colour", [0, 0, 0])
        if (not isinstance(colour, list) or len(colour) != 3
                or any(_int_in(c, 0, 255) is None for c in colour)):
            raise _fail(path, f"class {name!r}: colour {colour!r} is not [r, g, b] in 0..255")
        names[class_id] = name
        colours[class_id] = (int(colour[0]), int(colour[1]), int(colour[2]))
    return names, colours


def _lookup_table(path: str, doc: Dict[str, Any], names: Dict[int, str],
                  model_classes: Optional[Sequence[str]]) -> np.ndarray:
    """Model id -> output id; ``model_classes`` None: the file's own checks only (the
    model's class names are checked once a model is known)."""
    ids_by_name = {name: class_id for class_id, name in names.items()}
    default = _int_in(doc.get("default"), 0, UNLABELED_ID)
    if default is None or (default != UNLABELED_ID and default not in names):
        raise _fail(path, f"'default' {doc.get('default')!r} must be one of the class ids "
                          f"or 255")
    mapping = doc.get("mapping") or {}
    if not isinstance(mapping, dict):
        raise _fail(path, "'mapping' must map model class names to output class names")
    model_ids = {name: i for i, name in enumerate(model_classes or ())}
    lut = np.full(256, UNLABELED_ID, dtype=np.uint8)
    lut[: len(model_ids)] = default
    for model_name, output_name in mapping.items():
        if model_classes is not None and model_name not in model_ids:
            raise _fail(path, f"unknown model class {model_name!r} (the model has: "
                              f"{', '.join(model_classes)})")
        if output_name not in ids_by_name:
            raise _fail(path, f"{model_name!r} maps to {output_name!r}, which is not in "
                              f"'classes'")
        if model_name in model_ids:
            lut[model_ids[model_name]] = ids_by_name[output_name]
    return lut


def load_label_map(path: str, model_classes: Optional[Sequence[str]]) -> LabelMap:
    """Reads and checks the label map at ``path`` for a model with ``model_classes``.

    Raises :class:`LabelMapError` (one line: file and problem) for an unreadable file, an
    unknown model or output class name, a duplicate or out-of-range id, a bad colour.
    ``model_classes`` None checks the file alone (no model known yet); the map it returns
    is then not for applying.
    """
    doc = _read_yaml(path)
    names, colours = _output_classes(path, doc.get("classes"))
    lut = _lookup_table(path, doc, names, model_classes)
    return LabelMap(names, colours, lut, source=path)


def label_map_for(path: str, class_names: Optional[Sequence[str]],
                  palette: Sequence[Sequence[int]], config_dir: str) -> LabelMap:
    """The map a ``label_map`` setting names, for a model with these classes.

    Empty: the model's own classes. A relative path is resolved against ``config_dir``
    (the package's ``config/``). ``class_names`` None: the file's own checks only. Raises
    :class:`LabelMapError` (one line).
    """
    if not path.strip():
        if class_names is None:
            return identity_label_map([], [])
        return identity_label_map(class_names, palette)
    return load_label_map(resolve_label_map_path(path, config_dir), class_names)
