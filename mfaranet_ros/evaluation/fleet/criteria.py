"""The gate: a criteria file checked against ``fleet.json``, and deltas to a baseline.

YAML::

    fleet_miou_min: 0.70            # fleet mIoU (summed confusion matrices)
    bag_miou_min: 0.55              # per-bag mIoU floor ...
    bag_pass_rate_min: 0.95         # ... that at least this share of the bags reach
    class_iou_min: {road: 0.90, person: 0.40}
    max_failed_units: 0             # more failed units fail the gate (the default: 0)
    baseline:                       # with --baseline earlier/fleet.json
      fleet_miou_drop_max: 0.01     # the fleet mIoU may fall at most this much
      class_iou_drop_max: 0.03      # any class's IoU
      bag_miou_drop_max: 0.05       # any bag's mIoU

``max_failed_units`` means one thing wherever it is given (here, in the manifest, or as
``--max-failed-units``): more failed units than that fail the gate, exit 1. Without any,
no unit may fail. Given in the manifest or on the command line, the run also stops as soon
as the limit is passed (its report covers the units done). Two different values are
refused.

Exit codes of ``eval-fleet``: 0 pass, 1 the gate failed (a criterion, or failed units),
2 the run could not be done or had nothing to score.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from .manifest import ManifestError, check_fields

__all__ = ["load_criteria", "check_criteria", "baseline_deltas", "failed_units_limit",
           "check_failed_units", "check_baseline_scoring"]

_KEYS = {"fleet_miou_min", "bag_miou_min", "bag_pass_rate_min", "class_iou_min",
         "max_failed_units", "baseline"}
_BASELINE_KEYS = {"fleet_miou_drop_max", "class_iou_drop_max", "bag_miou_drop_max"}


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ManifestError(f"criteria {where}: expected a number >= 0, got {value!r}")
    return float(value)


def parse_criteria(data, class_names) -> Dict:
    """Checks a parsed criteria mapping; one-line :class:`ManifestError` naming the field."""
    check_fields(data, _KEYS, "criteria", "a mapping")
    for k in ("fleet_miou_min", "bag_miou_min", "bag_pass_rate_min", "max_failed_units"):
        if k in data:
            _number(data[k], k)
    floors = data.get("class_iou_min", {})
    if not isinstance(floors, dict):
        raise ManifestError("criteria class_iou_min: expected a mapping class -> IoU")
    for name, v in floors.items():
        if name not in class_names:
            raise ManifestError(f"criteria class_iou_min: unknown class {name!r}")
        _number(v, f"class_iou_min.{name}")
    base = data.get("baseline", {})
    if not isinstance(base, dict) or set(base) - _BASELINE_KEYS:
        raise ManifestError(f"criteria baseline: expected a mapping of "
                            f"{sorted(_BASELINE_KEYS)}")
    for k, v in base.items():
        _number(v, f"baseline.{k}")
    return data


def load_criteria(path, class_names) -> Dict:
    import yaml

    try:
        data = yaml.safe_load(open(path).read())
    except OSError as exc:
        raise ManifestError(f"criteria {str(path)!r}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"criteria {str(path)!r} is not valid YAML: "
                            f"{str(exc).splitlines()[0]}") from None
    return parse_criteria(data, class_names)


def _delta(now: Optional[float], before: Optional[float]) -> Optional[float]:
    return None if now is None or before is None else now - before


def baseline_deltas(fleet: Dict, baseline: Dict) -> Dict:
    """Per-class, per-bag and fleet mIoU differences (now - baseline; None where absent)."""
    now_cls, old_cls = fleet["fleet"]["per_class"], baseline["fleet"]["per_class"]
    return {
        "fleet_miou": _delta(fleet["fleet"]["miou"], baseline["fleet"]["miou"]),
        "per_class": {k: _delta(v["iou"], old_cls.get(k, {}).get("iou"))
                      for k, v in now_cls.items()},
        "per_bag": {b: _delta(v["miou"], baseline["per_bag"].get(b, {}).get("miou"))
                    for b, v in fleet["per_bag"].items()},
    }


def _check_baseline(limits: Dict, deltas: Dict) -> List[str]:
    failures = []
    drop = limits.get("fleet_miou_drop_max")
    if drop is not None and deltas["fleet_miou"] is not None and \
            deltas["fleet_miou"] < -drop:
        failures.append(f"fleet mIoU fell {-deltas['fleet_miou']:.4f} (> {drop})")
    for key, what in (("class_iou_drop_max", "per_class"), ("bag_miou_drop_max", "per_bag")):
        drop = limits.get(key)
        for name, d in deltas[what].items() if drop is not None else ():
            if d is not None and d < -drop:
                failures.append(f"{what[4:]} {name}: fell {-d:.4f} (> {drop})")
    return failures


def check_criteria(criteria: Dict, fleet: Dict, deltas: Optional[Dict] = None) -> List[str]:
    """The failed criteria, one line each (empty: pass)."""
    failures = []
    miou = fleet["fleet"]["miou"]
    if "fleet_miou_min" in criteria and (miou is None or miou < criteria["fleet_miou_min"]):
        failures.append(f"fleet mIoU {miou} < {criteria['fleet_miou_min']}")
    if "bag_miou_min" in criteria:
        bags = [b["miou"] for b in fleet["per_bag"].values()]
        passed = sum(1 for m in bags if m is not None and m >= criteria["bag_miou_min"])
        rate = passed / len(bags) if bags else 0.0
        need = criteria.get("bag_pass_rate_min", 1.0)
        if rate < need:
            failures.append(f"{rate:.1%} of bags reach mIoU {criteria['bag_miou_min']} "
                            f"(< {need:.1%})")
    for name, floor in criteria.get("class_iou_min", {}).items():
        iou = fleet["fleet"]["per_class"][name]["iou"]
        if iou is None or iou < floor:
            failures.append(f"class {name}: IoU {iou} < {floor}")
    if deltas is not None:
        failures += _check_baseline(criteria.get("baseline", {}), deltas)
    return failures


def failed_units_limit(manifest_limit: Optional[int], criteria: Dict) -> Optional[int]:
    """The one ``max_failed_units`` of a run (None: not given, so 0 applies at the gate);
    :class:`ManifestError` where the manifest / command line and the criteria differ."""
    from_criteria = criteria.get("max_failed_units")
    if from_criteria is not None and int(from_criteria) != from_criteria:
        raise ManifestError(f"criteria max_failed_units: expected a whole number, got "
                            f"{from_criteria!r}")
    if manifest_limit is not None and from_criteria is not None and \
            int(from_criteria) != manifest_limit:
        raise ManifestError(f"max_failed_units is {manifest_limit} in the manifest or on the "
                            f"command line but {int(from_criteria)} in the criteria; give "
                            f"one value")
    return manifest_limit if manifest_limit is not None else \
        (None if from_criteria is None else int(from_criteria))


def check_failed_units(failed: List[Dict], limit: Optional[int]) -> List[str]:
    """The gate's line on failed units (``failed``: their ``{unit, reason}``), if any."""
    allowed = 0 if limit is None else limit
    if len(failed) <= allowed:
        return []
    first = failed[0]
    why = "max_failed_units" if limit is not None else "no max_failed_units given"
    return [f"{len(failed)} failed units > {allowed} ({why}); first: {first['unit']}: "
            f"{first['reason']}"]


def check_baseline_scoring(baseline: Dict, scoring: Dict) -> None:
    """Refuses (:class:`ManifestError`) a baseline scored over other classes, another
    label map or another ignore id: its deltas would compare different things."""
    old = baseline.get("scoring")
    names = list(baseline["results"]["fleet"]["per_class"])
    if names != scoring["class_names"]:
        raise ManifestError(f"--baseline is scored over other classes ({len(names)}: "
                            f"{', '.join(names[:4])}, ...) than this run "
                            f"({len(scoring['class_names'])}: "
                            f"{', '.join(scoring['class_names'][:4])}, ...)")
    if old is None:      # an eval-fleet from before these were recorded: classes only
        return
    for key, what in (("label_map_sha256", "label map"), ("ignore_index", "ignore id")):
        if old.get(key) != scoring[key]:
            raise ManifestError(f"--baseline was scored with another {what} "
                                f"({old.get(key)!r}, this run {scoring[key]!r})")
