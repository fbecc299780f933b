"""One fleet run: plan units, skip finished ones (``--resume``), run the engine, report.

``fleet.json``'s ``exit_code``: 0 pass, 1 the gate failed (a criterion, or more failed
units than ``max_failed_units``, 0 by default), 2 nothing to score (no frame evaluated, no
label topic, a label topic matching no frame: ``error`` says what to pass; the report and
the latency figures are written all the same), 130 Ctrl-C (the finished units are kept
for ``--resume``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .manifest import Manifest, ManifestError
from .model import file_sha256
from .results import ResultStore, aggregate, latency_summary, write_frames_jsonl
from .units import Unit, config_key, plan_units

log = logging.getLogger(__name__)

__all__ = ["FleetRun", "run_fleet", "RUN_FAILED"]

RUN_FAILED = 2


@dataclass
class FleetRun:
    """What ``eval-fleet`` was asked to do."""

    manifest: Manifest
    out: Path
    model: Dict                         # :func:`.model.model_spec`
    engine: str = "ray"                 # ray | serial
    address: str = "local"
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: Optional[int] = None   # None: from the nodes (engine_ray)
    resume: bool = False
    criteria: Dict = field(default_factory=dict)
    baseline: Optional[Dict] = None
    write_bags: str = "none"            # none | worst:K | all
    progress: bool = True
    hash_bags: bool = False             # a sha256 of every bag file, by the units
    unit: Optional[str] = None          # evaluate this unit only (a failed unit's re-run)
    crash_once: Optional[str] = None    # fault injection (tests): see engine_ray


def _engine_results(run: FleetRun, todo: List[Unit], facts: Dict):
    if run.engine == "serial":
        from .engine_serial import run_serial

        return run_serial(todo, run.model, run.manifest.ignore_index)
    from .engine_ray import run_ray, start_ray

    facts.update(start_ray(run.address, run.workers, run.cpus_per_worker))
    return run_ray(todo, run.model, run.manifest.ignore_index, workers=run.workers,
                   gpus_per_worker=run.gpus_per_worker, cpus=run.cpus_per_worker,
                   crash_once=run.crash_once)


def _execute(run: FleetRun, units: List[Unit], store: ResultStore, keys: Dict[str, str],
             facts: Dict, limit: Optional[int]) -> List[Dict]:
    """Runs the units without a finished result; returns every unit's result.

    Stops early (``facts["stopped"]``) once more units failed than an explicit ``limit``.
    """
    from tqdm import tqdm

    from ..offline import StopOnSigint
    from .rerun import rerun_command

    results = {u.unit_id: store.finished(u.unit_id, keys[u.unit_id]) if run.resume else None
               for u in units}
    todo = [u for u in units if results[u.unit_id] is None]
    facts["redone_units"] = [u.unit_id for u in todo]
    bar = tqdm(total=len(units), initial=len(units) - len(todo), unit="unit",
               disable=not run.progress, desc="eval-fleet", dynamic_ncols=True)
    frames, failed = 0, 0
    # Ctrl-C stops between units (the unit in flight is finished and kept); a second one
    # at once. A KeyboardInterrupt raised wherever the first signal lands (inside torch, in
    # Ray's client) could leave the process to die of the signal instead of exiting 130.
    stop = StopOnSigint("unit")
    stop.install()
    try:
        for result in _engine_results(run, todo, facts):
            uid = result["unit"]["unit_id"]
            result["rerun"] = rerun_command(uid, run.model, run.out)
            store.save(result, keys[uid])
            results[uid] = result
            frames += result["frames"]
            failed += result["status"] != "ok"
            bar.set_postfix(frames=frames, failed=failed)
            bar.update(1)
            if limit is not None and failed > limit:
                facts["stopped"] = (f"stopped early: {failed} units failed, more than "
                                    f"max_failed_units = {limit}")
                log.warning("%s; the report covers the units done", facts["stopped"])
                break
            if stop.requested:
                raise KeyboardInterrupt
    finally:
        stop.restore()
        bar.close()
    return [r for r in results.values() if r is not None]


def _gate(run: FleetRun, results: Dict, limit: Optional[int]) -> Dict:
    from .criteria import baseline_deltas, check_criteria, check_failed_units

    deltas = baseline_deltas(results, run.baseline["results"]) if run.baseline else None
    failures = check_criteria(run.criteria, results, deltas)
    failed = [f for b in results["per_bag"].values() for f in b["failures"]]
    failures += check_failed_units(failed, limit)
    return {"verdict": "fail" if failures else "pass", "failures": failures,
            "criteria": run.criteria, "max_failed_units": limit, "baseline_deltas": deltas}


def _label_candidates(bag_index: Dict) -> List[str]:
    """Image topics of the bags named ``.../label*``: what ``--label-topic`` may want."""
    from ..bags import IMAGE_TYPES

    return sorted({t for facts in bag_index.values() for t, typ in facts.get("topics", {})
                   .items() if typ in IMAGE_TYPES and t.rsplit("/", 1)[-1].startswith("label")})


def nothing_to_score(run: FleetRun, results_list: List[Dict], bag_index: Dict) -> str:
    """Why no figure of accuracy could be computed, and what to pass ("" if there is one)."""
    ok = [r for r in results_list if r["status"] == "ok"]
    if any(r.get("frames_with_truth", 0) for r in ok):
        return ""
    found = _label_candidates(bag_index)
    hint = (f"pass --label-topic {found[0]}" if len(found) == 1 else
            f"pass --label-topic, one of {', '.join(found)}" if found else
            "pass --label-topic with the bags' mono8 label topic (or label_topic in the "
            "manifest)")
    if not results_list:
        return "no unit to evaluate"
    if not ok:
        first = sorted(results_list, key=lambda r: r["unit"]["unit_id"])[0]
        label_problem = "label" in first["reason"]
        return (f"no frame evaluated: all {len(results_list)} units failed (first, "
                f"{first['unit']['unit_id']}: {first['reason'][:300]})"
                + (f"; {hint}" if label_problem else ""))
    if not any(r["unit"]["label_topic"] for r in results_list):
        return f"nothing to score: no label topic was given; {hint}"
    topics = sorted({r["unit"]["label_topic"] for r in results_list if r["unit"]["label_topic"]})
    return (f"nothing to score: the label topic {', '.join(topics)} matches no frame "
            f"by stamp; {hint}")


def _write_bags(run: FleetRun, results: Dict, label_map) -> List[str]:
    """eval-bag's output bags (overlay, labels) for the worst K bags or all of them."""
    from ..offline import EvalOptions, evaluate_bag
    from .model import load_model
    from .report import worst_bags

    if run.write_bags == "none":
        return []
    k = None if run.write_bags == "all" else int(run.write_bags.split(":")[1])
    entries = {e.path: e for e in run.manifest.bags}
    segmenter, written = load_model(run.model), []
    for i, bag in enumerate(worst_bags(results, k)):
        e = entries[bag]
        out = run.out / "bags" / f"{i:03d}_{Path(bag).name}"
        try:
            evaluate_bag(bag, out, segmenter, EvalOptions(
                image_topic=e.image_topic, label_topic=e.label_topic, progress=False,
                label_map=label_map),
                weights=run.model["weights"])
            written.append(str(out))
        except Exception as exc:       # noqa: BLE001 - a bag that cannot be written is logged
            log.warning("no output bag for %s: %s: %s", bag, type(exc).__name__, exc)
    return written


def _scoring(names: List[str], label_map, ignore_index: int) -> Dict:
    """What the figures are over: a baseline must have been scored the same way."""
    return {"class_names": list(names),
            "label_map": str(label_map.source) if label_map else "",
            "label_map_sha256": file_sha256(label_map.source) if label_map else "",
            "ignore_index": ignore_index}


def _plan(run: FleetRun):
    units, bag_index = plan_units(run.manifest, run.hash_bags)
    if run.unit is not None:
        chosen = [u for u in units if u.unit_id == run.unit]
        if not chosen:
            ids = ", ".join(u.unit_id for u in units[:6]) + (", ..." if len(units) > 6 else "")
            raise ManifestError(f"--unit {run.unit!r} is not a unit of this manifest; its "
                                f"units: {ids}")
        units = chosen
    return units, bag_index


def run_fleet(run: FleetRun, metadata) -> Dict:
    """Runs the fleet evaluation; returns ``fleet.json``'s dict (``exit_code`` in it)."""
    from ..offline import output_classes
    from .criteria import check_baseline_scoring, failed_units_limit
    from .model import load_spec_label_map
    from .provenance import provenance
    from .report import write_fleet_report
    from .rerun import write_effective_manifest

    run.out.mkdir(parents=True, exist_ok=True)
    label_map = load_spec_label_map(run.model, metadata)
    names, palette = output_classes(metadata, label_map)
    scoring = _scoring(names, label_map, run.manifest.ignore_index)
    if run.baseline:          # refused before any unit runs
        check_baseline_scoring(run.baseline, scoring)
    limit = failed_units_limit(run.manifest.max_failed_units, run.criteria)
    facts: Dict = {}
    try:       # planning reads every bag's index: hundreds of bags take a while too
        units, bag_index = _plan(run)
        write_effective_manifest(run.manifest, run.out)
        config = {**run.model, "weights_sha256": file_sha256(run.model["weights"]),
                  "label_map_sha256": scoring["label_map_sha256"],
                  "ignore_index": run.manifest.ignore_index}
        keys = {u.unit_id: config_key(config, u) for u in units}
        explicit = run.manifest.max_failed_units
        results_list = _execute(run, units, ResultStore(run.out), keys, facts, explicit)
    except KeyboardInterrupt:
        print(f"interrupted: finished units are kept in {run.out / 'units'}; "
              f"run again with --resume")
        return {"status": "interrupted", "exit_code": 130}
    results = aggregate(results_list, names, run.manifest.ignore_index)
    results["latency_ms"] = latency_summary(results_list)
    write_frames_jsonl(run.out / "frames.jsonl", results_list)
    doc = {"tool": "mfaranet eval-fleet", "status": "stopped" if "stopped" in facts else
           "complete", "status_detail": facts.get("stopped", ""), "scoring": scoring,
           "results": results,
           "units": {r["unit"]["unit_id"]: {k: r.get(k) for k in (
               "status", "error_type", "reason", "frames", "skipped", "rerun", "wall_s",
               "cpu_s", "bytes_read", "worker")} for r in results_list},
           "redone_units": facts.get("redone_units", []),
           "provenance": provenance(run, facts, bag_index, results_list,
                                    str(getattr(metadata, "source", "")))}
    doc["gate"] = _gate(run, results, limit)
    doc["error"] = nothing_to_score(run, results_list, bag_index)
    if doc["error"]:
        doc["gate"]["verdict"] = "nothing to score"
    doc["outputs"] = write_fleet_report(doc, run.out, palette)
    doc["outputs"]["bags"] = _write_bags(run, results, label_map)
    doc["exit_code"] = RUN_FAILED if doc["error"] else 1 if doc["gate"]["failures"] else 0
    (run.out / "fleet.json").write_text(json.dumps(doc, indent=1))
    return doc
