"""Where a fleet run's figures came from: model, software, machine and every bag.

A bag is identified by what costs nothing to read: its files' sizes and modification
times, the sha256 of its ``metadata.yaml`` (a rosbag2 folder's: topics, counts, times)
and what planning read from its index (image topic, message count, first and last
receive time). A content hash of every byte is taken only on request (``--hash-bags``):
then each bag's first unit computes it, in parallel over the workers, while the run goes
on; hashing 500 bags of 4 GB in the driver after the run would read 2 TB again.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Dict, List

from .model import file_sha256
from .units import bag_files

__all__ = ["bag_facts", "provenance"]


def bag_facts(path: str, index: Dict) -> Dict:
    """Sizes, modification times and the metadata file's hash of one bag, with ``index``
    (what planning read, :func:`.units.plan_units`)."""
    files = [p for p in bag_files(path) if p.exists()]
    root = Path(path)
    doc = {"bytes": sum(p.stat().st_size for p in files),
           "files": {str(p.relative_to(root)) if root.is_dir() else p.name:
                     {"bytes": p.stat().st_size,
                      "mtime_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                 time.gmtime(p.stat().st_mtime))}
                     for p in files}}
    if (root / "metadata.yaml").is_file():
        doc["metadata_yaml_sha256"] = file_sha256(root / "metadata.yaml")
    doc.update({k: v for k, v in index.items() if k != "topics"})
    return doc


def provenance(run, facts: Dict, bag_index: Dict, results: List[Dict],
               meta_source: str) -> Dict:
    """``fleet.json``'s ``provenance``: the checkpoint (hashed: one small file), the
    software, Ray, and each bag's :func:`bag_facts` (``sha256`` from the units, with
    ``--hash-bags``)."""
    from mfaranet_ros import __version__

    hashes: Dict[str, Dict] = {}
    for r in results:
        if r.get("bag_sha256"):
            hashes[r["unit"]["bag"]] = r["bag_sha256"]
    bags = {}
    for e in run.manifest.bags:
        bags[e.path] = bag_facts(e.path, bag_index.get(e.path, {}))
        if e.path in hashes:
            bags[e.path]["sha256"] = hashes[e.path]
    return {"checkpoint": run.model["weights"],
            "checkpoint_sha256": file_sha256(run.model["weights"]),
            "checkpoint_source": meta_source,
            "model": {k: v for k, v in run.model.items() if k != "weights"},
            "package_version": __version__, "host": platform.node(),
            "python": platform.python_version(), "engine": run.engine,
            "ray": facts.get("version"), "ray_address": facts.get("address"),
            "ray_startup_s": facts.get("startup_s"), "workers": run.workers,
            "manifest": run.manifest.source, "bags_hashed": bool(run.hash_bags),
            "bags": bags,
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
