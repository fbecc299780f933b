"""``fleet.json``, ``report.md`` and the plots of a fleet run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..plots import _pyplot, plot_iou

__all__ = ["write_fleet_report", "worst_bags"]


def _pct(v: Optional[float]) -> str:
    return "absent" if v is None else f"{100 * v:.2f} %"


def worst_bags(fleet: Dict, k: Optional[int] = None) -> List[str]:
    """Bags by mIoU, worst first (bags without an mIoU last); the first ``k``."""
    order = sorted(fleet["per_bag"], key=lambda b: (fleet["per_bag"][b]["miou"] is None,
                                                    fleet["per_bag"][b]["miou"] or 0.0))
    return order if k is None else order[:k]


def _plot_bag_distribution(fleet: Dict, path: Path) -> bool:
    values = [b["miou"] for b in fleet["per_bag"].values() if b["miou"] is not None]
    if not values:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(values, bins=min(30, max(5, len(values))), color="#4c72b0")
    ax.set_xlabel("per-bag mIoU")
    ax.set_ylabel("bags")
    ax.set_title(f"mIoU of {len(values)} bags")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _md_table(rows: Dict[str, Dict], what: str) -> List[str]:
    lines = [f"| {what} | mIoU | pixel acc. | frames | skipped | status |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {_pct(r['miou'])} | {_pct(r['pixel_accuracy'])} | "
                     f"{r['frames']} | {sum(r['skipped'].values())} | {r['status']} |")
    return lines


def _markdown(doc: Dict, images: Dict[str, str]) -> str:
    fleet = doc["results"]["fleet"]
    worst_cls = sorted((v["iou"], n) for n, v in fleet["per_class"].items()
                       if v["iou"] is not None)[:5]
    lines = ["# mfaranet eval-fleet", "",
             f"status: **{doc['status']}**; gate: **{doc['gate']['verdict']}**", ""]
    for note in (doc.get("status_detail"), doc.get("error")):
        if note:
            lines += [f"> {note}", ""]
    lines += [f"- fleet mIoU (summed confusion matrices): **{_pct(fleet['miou'])}**",
              f"- macro mIoU over bags: {_pct(doc['results']['macro_miou'])}",
              f"- frames: {fleet['frames']}; skipped: {fleet['skipped'] or 'none'}",
              f"- failed units: {doc['results']['failed_units']}", ""]
    lines += [f"- criterion failed: {f}" for f in doc["gate"]["failures"]]
    lines += ["", "## Worst bags", ""] + _md_table(
        {b: doc["results"]["per_bag"][b] for b in worst_bags(doc["results"], 10)}, "bag")
    lines += ["", "## Worst classes", ""] + [f"- {n}: {_pct(v)}" for v, n in worst_cls]
    if doc["results"]["per_tag"]:
        lines += ["", "## Per tag", ""] + _md_table(doc["results"]["per_tag"], "tag")
    failures = [f for b in doc["results"]["per_bag"].values() for f in b["failures"]]
    if failures:
        lines += ["", "## Failed units", ""] + [
            f"- {f['unit']}: {f['reason']} (alone: `{f.get('rerun', '')}`)" for f in failures]
    latency = doc["results"].get("latency_ms") or {}
    if latency:
        lines += ["", "## Latency (ms per frame, every unit)", "",
                  "| stage | frames | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|"]
        lines += [f"| {k} | {v['count']} | {v['p50']:.1f} | {v['p90']:.1f} | {v['p99']:.1f} | "
                  f"{v['max']:.1f} |" for k, v in latency.items()]
    lines += ["", "## Plots", ""] + [f"![{k}]({v})" for k, v in images.items()]
    return "\n".join(lines) + "\n"


def write_fleet_report(doc: Dict, out: Path, palette: Sequence[Sequence[int]]) -> Dict:
    """Writes ``fleet.json``, ``report.md``, ``fleet_iou.png``, ``bag_miou.png``."""
    images = {}
    if plot_iou(doc["results"]["fleet"], palette, out / "fleet_iou.png"):
        images["fleet per-class IoU"] = "fleet_iou.png"
    if _plot_bag_distribution(doc["results"], out / "bag_miou.png"):
        images["per-bag mIoU"] = "bag_miou.png"
    (out / "fleet.json").write_text(json.dumps(doc, indent=1))
    (out / "report.md").write_text(_markdown(doc, images))
    return {"fleet_json": str(out / "fleet.json"), "report_md": str(out / "report.md")}
