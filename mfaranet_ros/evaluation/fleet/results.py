"""Unit results on disk (for ``--resume``) and their sums: per bag, per tag, the fleet.

Every figure comes from summed confusion matrices with the one Cityscapes rule of
:class:`..metrics.ConfusionMatrix` (a class without support in either the truth or the
prediction is absent, ``None``, not 0); the macro average over bags is a second figure.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..metrics import ConfusionMatrix

__all__ = ["ResultStore", "aggregate", "latency_summary", "write_frames_jsonl"]


class ResultStore:
    """``out/units/<unit>.json``: one file per finished unit, written atomically."""

    def __init__(self, out: Path) -> None:
        self.folder = Path(out) / "units"
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, unit_id: str) -> Path:
        return self.folder / f"{unit_id}.json"

    def save(self, result: Dict, key: str) -> None:
        path = self._path(result["unit"]["unit_id"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**result, "config_key": key}))
        os.replace(tmp, path)      # a Ctrl-C never leaves half a result

    def finished(self, unit_id: str, key: str) -> Optional[Dict]:
        """The unit's earlier result if it finished (``ok``) with the same configuration."""
        try:
            result = json.loads(self._path(unit_id).read_text())
        except (OSError, ValueError):
            return None
        return result if result.get("config_key") == key and result["status"] == "ok" \
            else None


def _summary(matrix: np.ndarray, names: Sequence[str], ignore_index: int) -> Dict:
    cm = ConfusionMatrix(len(names), ignore_index)
    cm.matrix = np.asarray(matrix, np.int64)
    summary = cm.summary(names)
    summary.pop("confusion_matrix")
    summary["confusion_matrix"] = cm.matrix.tolist()
    return summary


def _group(results: Iterable[Dict], key) -> Dict[str, List[Dict]]:
    groups: Dict[str, List[Dict]] = {}
    for r in results:
        for k in key(r):
            groups.setdefault(k, []).append(r)
    return groups


def _sum_group(results: List[Dict], names: Sequence[str], ignore_index: int) -> Dict:
    c = len(names)
    ok = [r for r in results if r["status"] == "ok"]
    matrix = sum((np.asarray(r["confusion_matrix"], np.int64) for r in ok),
                 np.zeros((c, c), np.int64))
    skipped: Dict[str, int] = {}
    for r in results:
        for reason, n in r["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + n
    return {**_summary(matrix, names, ignore_index),
            "status": "ok" if len(ok) == len(results) else "failed",
            "frames": sum(r["frames"] for r in ok),
            "frames_with_truth": sum(r.get("frames_with_truth", 0) for r in ok),
            "skipped": skipped, "units": len(results),
            "failures": [{"unit": r["unit"]["unit_id"], "error_type": r.get("error_type", ""),
                          "reason": r["reason"], "rerun": r.get("rerun", "")}
                         for r in results if r["status"] != "ok"]}


def aggregate(results: List[Dict], names: Sequence[str], ignore_index: int) -> Dict:
    """``{fleet, macro_miou, per_bag, per_tag, failed_units}`` from the unit results."""
    results = sorted(results, key=lambda r: r["unit"]["unit_id"])
    per_bag = {bag: {**_sum_group(rs, names, ignore_index), "tags": rs[0]["unit"]["tags"]}
               for bag, rs in _group(results, lambda r: [r["unit"]["bag"]]).items()}
    per_tag = {tag: _sum_group(rs, names, ignore_index)
               for tag, rs in _group(results, lambda r: r["unit"]["tags"]).items()}
    bag_mious = [b["miou"] for b in per_bag.values() if b["miou"] is not None]
    fleet = _sum_group(results, names, ignore_index)
    return {"fleet": fleet,
            "macro_miou": float(np.mean(bag_mious)) if bag_mious else None,
            "per_bag": per_bag, "per_tag": per_tag,
            "failed_units": sum(1 for r in results if r["status"] != "ok")}


def latency_summary(results: List[Dict]) -> Dict:
    """``{stage: {count, mean, p50, ...}}`` in ms over every evaluated frame of the run
    (frames of failed units too: their time was spent), from the per-frame records."""
    from ...timing import summarize_times
    from ..metrics import LatencyStats

    samples: Dict[str, List[float]] = {}
    for r in results:
        for rec in r["per_frame"]:
            for stage, ms in rec.get("latency_ms", {}).items():
                samples.setdefault(stage, []).append(ms)
    return {stage: summarize_times(v, LatencyStats.PERCENTILES) for stage, v in samples.items()}


def write_frames_jsonl(path: Path, results: List[Dict]) -> None:
    """One line per frame: bag, unit, stamp, mIoU, pixel accuracy, latency or skip."""
    with open(path, "w") as f:
        for r in sorted(results, key=lambda r: r["unit"]["unit_id"]):
            for rec in r["per_frame"]:
                f.write(json.dumps({"bag": r["unit"]["bag"], "unit": r["unit"]["unit_id"],
                                    **rec}) + "\n")
