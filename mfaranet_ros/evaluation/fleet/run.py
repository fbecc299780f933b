"""One fleet run: plan units, skip finished ones (``--resume``), run the engine, report.

Returns the exit code: 0 pass, 1 a criterion failed, 2 the run could not be done, 130
Ctrl-C (the finished units are kept for ``--resume``).
"""
from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .manifest import Manifest, ManifestError
from .model import file_sha256
from .results import ResultStore, aggregate, write_frames_jsonl
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
    resume: bool = False
    criteria: Dict = field(default_factory=dict)
    baseline: Optional[Dict] = None
    write_bags: str = "none"            # none | worst:K | all
    progress: bool = True
    crash_once: Optional[str] = None    # fault injection (tests): see engine_ray


def _engine_results(run: FleetRun, todo: List[Unit], facts: Dict):
    if run.engine == "serial":
        from .engine_serial import run_serial

        return run_serial(todo, run.model, run.manifest.ignore_index)
    from .engine_ray import run_ray, start_ray

    facts.update(start_ray(run.address, run.workers))
    return run_ray(todo, run.model, run.manifest.ignore_index, workers=run.workers,
                   gpus_per_worker=run.gpus_per_worker, crash_once=run.crash_once)


def _execute(run: FleetRun, units: List[Unit], store: ResultStore, keys: Dict[str, str],
             facts: Dict) -> List[Dict]:
    """Runs the units without a finished result; returns every unit's result."""
    from tqdm import tqdm

    from ..offline import StopOnSigint

    results = {u.unit_id: store.finished(u.unit_id, keys[u.unit_id]) if run.resume else None
               for u in units}
    todo = [u for u in units if results[u.unit_id] is None]
    facts["redone_units"] = [u.unit_id for u in todo]
    limit = run.manifest.max_failed_units
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
            store.save(result, keys[uid])
            results[uid] = result
            frames += result["frames"]
            failed += result["status"] != "ok"
            bar.set_postfix(frames=frames, failed=failed)
            bar.update(1)
            if limit is not None and failed > limit:
                raise ManifestError(f"{failed} units failed, more than max_failed_units "
                                    f"= {limit}; see {store.folder}")
            if stop.requested:
                raise KeyboardInterrupt
    finally:
        stop.restore()
        bar.close()
    return [r for r in results.values() if r is not None]


def _bag_facts(path: str) -> Dict:
    files = [p for p in sorted(Path(path).rglob("*")) if p.is_file()] \
        if Path(path).is_dir() else [Path(path)]
    return {"bytes": sum(p.stat().st_size for p in files if p.exists()),
            "sha256": {p.name: file_sha256(p) for p in files if p.exists()}}


def _provenance(run: FleetRun, facts: Dict, meta_source: str) -> Dict:
    from mfaranet_ros import __version__

    return {"checkpoint": run.model["weights"],
            "checkpoint_sha256": file_sha256(run.model["weights"]),
            "checkpoint_source": meta_source,
            "model": {k: v for k, v in run.model.items() if k != "weights"},
            "package_version": __version__, "host": platform.node(),
            "python": platform.python_version(), "engine": run.engine,
            "ray": facts.get("version"), "ray_address": facts.get("address"),
            "ray_startup_s": facts.get("startup_s"), "workers": run.workers,
            "manifest": run.manifest.source,
            "bags": {e.path: _bag_facts(e.path) for e in run.manifest.bags},
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _gate(run: FleetRun, results: Dict) -> Dict:
    from .criteria import baseline_deltas, check_criteria

    deltas = baseline_deltas(results, run.baseline["results"]) if run.baseline else None
    failures = check_criteria(run.criteria, results, deltas)
    return {"verdict": "fail" if failures else "pass", "failures": failures,
            "criteria": run.criteria, "baseline_deltas": deltas}


def _write_bags(run: FleetRun, results: Dict, label_map) -> List[str]:
    """eval-bag's output bags (overlay, labels) for the worst K bags or all of them."""
    from ..bags import BagError
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
        except BagError as exc:
            log.warning("no output bag for %s: %s", bag, exc)
    return written


def run_fleet(run: FleetRun, metadata) -> Dict:
    """Runs the fleet evaluation; returns ``fleet.json``'s dict (``exit_code`` in it)."""
    from ..offline import output_classes
    from .model import load_spec_label_map
    from .report import write_fleet_report

    run.out.mkdir(parents=True, exist_ok=True)
    label_map = load_spec_label_map(run.model, metadata)
    names, palette = output_classes(metadata, label_map)
    facts: Dict = {}
    status = "complete"
    try:       # planning reads every bag's metadata: hundreds of bags take a while too
        units = plan_units(run.manifest)
        config = {**run.model, "weights_sha256": file_sha256(run.model["weights"]),
                  "label_map_sha256": file_sha256(label_map.source) if label_map else "",
                  "ignore_index": run.manifest.ignore_index}
        keys = {u.unit_id: config_key(config, u) for u in units}
        results_list = _execute(run, units, ResultStore(run.out), keys, facts)
    except KeyboardInterrupt:
        print(f"interrupted: finished units are kept in {run.out / 'units'}; "
              f"run again with --resume")
        return {"status": "interrupted", "exit_code": 130}
    results = aggregate(results_list, names, run.manifest.ignore_index)
    write_frames_jsonl(run.out / "frames.jsonl", results_list)
    doc = {"tool": "mfaranet eval-fleet", "status": status, "results": results,
           "units": {r["unit"]["unit_id"]: {k: r[k] for k in ("status", "reason", "frames",
                                                             "skipped", "rerun", "wall_s")}
                     for r in results_list},
           "redone_units": facts.get("redone_units", []),
           "provenance": _provenance(run, facts, str(getattr(metadata, "source", "")))}
    doc["gate"] = _gate(run, results)
    doc["outputs"] = write_fleet_report(doc, run.out, palette)
    doc["outputs"]["bags"] = _write_bags(run, results, label_map)
    doc["exit_code"] = 1 if doc["gate"]["failures"] else 0
    (run.out / "fleet.json").write_text(json.dumps(doc, indent=1))
    return doc
