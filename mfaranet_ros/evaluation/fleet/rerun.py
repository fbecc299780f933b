"""Re-running one unit exactly: the run's effective manifest, and the command that
evaluates one of its units alone with the same model options.

``eval-fleet`` writes ``manifest.json`` into its output folder: the bags as expanded (no
globs), with the topics the command line filled in, the skips and the windows' size. A
unit is then re-run by its id (``--unit``) from that file: planning it again from the same
bag index gives the same window, skips and topics, and the command carries every model
option (weights, backend, device, precision, input size, pruned, cache, label map).
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Dict

from .manifest import Manifest

__all__ = ["MANIFEST_NAME", "write_effective_manifest", "rerun_command", "model_options"]

MANIFEST_NAME = "manifest.json"


def write_effective_manifest(manifest: Manifest, out: Path) -> Path:
    """``out/manifest.json``: the manifest this run evaluated, as ``--manifest`` reads it."""
    doc = {"ignore_index": manifest.ignore_index,
           "bags": [{"path": str(Path(e.path).resolve()), "image_topic": e.image_topic,
                     "label_topic": e.label_topic, "tags": list(e.tags),
                     "skip_first": e.skip_first, "skip_last": e.skip_last,
                     "skip_time": [list(w) for w in e.skip_time]} for e in manifest.bags]}
    for bag in doc["bags"]:
        for key in ("image_topic", "label_topic"):
            if not bag[key]:
                del bag[key]
    if manifest.unit_frames:
        doc["unit_frames"] = manifest.unit_frames
    path = Path(out) / MANIFEST_NAME
    path.write_text(json.dumps(doc, indent=1))
    return path


def model_options(model: Dict) -> list:
    """The command-line options of a :func:`.model.model_spec` dict."""
    size = model.get("input_size", "checkpoint")
    if isinstance(size, (list, tuple)):
        size = f"{int(size[0])}x{int(size[1])}"
    args = ["--weights", str(model["weights"]), "--backend", str(model.get("backend", "auto")),
            "--precision", str(model.get("precision", "fp32")), "--input-size", str(size)]
    if model.get("device"):
        args += ["--device", str(model["device"])]
    if model.get("pruned"):
        args.append("--pruned")
    if model.get("cache_dir"):
        args += ["--cache-dir", str(model["cache_dir"])]
    if model.get("label_map"):
        args += ["--label-map", str(model["label_map"])]
    return args


def rerun_command(unit_id: str, model: Dict, out: Path) -> str:
    """``mfaranet eval-fleet`` evaluating unit ``unit_id`` of the run in ``out`` alone,
    serially, into ``out/rerun/<unit_id>``."""
    out = Path(out).resolve()
    cmd = ["mfaranet", "eval-fleet", "--manifest", str(out / MANIFEST_NAME), "--unit", unit_id,
           "--engine", "serial", "--out", str(out / "rerun" / unit_id), *model_options(model)]
    return shlex.join(cmd)
