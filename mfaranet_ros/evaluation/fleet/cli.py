"""``mfaranet eval-fleet``: the command line of the fleet evaluation.

Takes ``eval-bag``'s model and topic options, with the same defaults, for every bag the
manifest does not override. A bad manifest, criteria file, baseline, checkpoint, an
unreachable Ray cluster, nothing to score, or any other error outside a unit: one line on
stderr, exit 2 (``-v`` logs the traceback). An error inside a unit fails that unit only.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ...cli_args import non_negative_int, positive_int
from ..model_args import add_label_map_option, add_segmenter_options

__all__ = ["register"]

log = logging.getLogger(__name__)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _write_bags_choice(text: str) -> str:
    if text in ("none", "all"):
        return text
    if text.startswith("worst:") and text[6:].isdigit() and int(text[6:]) > 0:
        return text
    raise argparse.ArgumentTypeError(f"expected none, all or worst:K, got {text!r}")


def _manifest(args):
    from .manifest import ManifestError, load_manifest, manifest_from_bags

    if bool(args.bags) == bool(args.manifest):
        raise ManifestError("give either bags or --manifest (not both, not neither)")
    manifest = load_manifest(args.manifest) if args.manifest else \
        manifest_from_bags(args.bags, args.image_topic, args.label_topic)
    for entry in manifest.bags:       # the command line's topics where the manifest has none
        entry.image_topic = entry.image_topic or args.image_topic
        entry.label_topic = entry.label_topic or args.label_topic
    if args.max_failed_units is not None:
        manifest.max_failed_units = args.max_failed_units
    return manifest


def _baseline(path):
    from .manifest import ManifestError

    if not path:
        return None
    try:
        doc = json.loads(Path(path).read_text())
        doc["results"]["fleet"]["per_class"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ManifestError(f"--baseline {path!r} is not a fleet.json of eval-fleet") from None
    return doc


def _fleet_run(args):
    from mfaranet_ros.model import read_checkpoint

    from ..offline import output_classes
    from .criteria import load_criteria
    from .model import load_spec_label_map, model_spec
    from .run import FleetRun

    manifest = _manifest(args)
    model = model_spec(args)
    if manifest.label_map:             # the manifest's, as for topics
        model["label_map"] = manifest.label_map
    metadata = read_checkpoint(model["weights"]).metadata
    # a bad map: one line now, not in every worker
    names, _ = output_classes(metadata, load_spec_label_map(model, metadata))
    criteria = load_criteria(args.criteria, names) if args.criteria else {}
    return FleetRun(manifest=manifest, out=Path(args.out), model=model, engine=args.engine,
                    address=args.address, workers=args.workers,
                    gpus_per_worker=args.gpus_per_worker,
                    cpus_per_worker=args.cpus_per_worker, resume=args.resume,
                    criteria=criteria, baseline=_baseline(args.baseline),
                    write_bags=args.write_bags, progress=not args.no_progress,
                    hash_bags=args.hash_bags, unit=args.unit), metadata


def _eval_fleet(args: argparse.Namespace) -> int:
    from mfaranet_ros.labelmap import LabelMapError
    from mfaranet_ros.model import CheckpointError

    from ..bags import BagError
    from .engine_ray import RayUnavailable
    from .manifest import ManifestError
    from .run import run_fleet

    try:
        run, metadata = _fleet_run(args)
        doc = run_fleet(run, metadata)
    except (ManifestError, BagError, CheckpointError, RayUnavailable, LabelMapError,
            FileNotFoundError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:      # before any unit ran (reading the checkpoint, Ray start)
        print("interrupted: no unit had finished", file=sys.stderr)
        return 130
    except Exception as exc:       # noqa: BLE001 - whatever else: one line, exit 2
        log.debug("eval-fleet failed", exc_info=True)
        print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())} (run with -v "
              f"for the traceback)", file=sys.stderr)
        return 2
    if doc["status"] == "interrupted":
        return doc["exit_code"]
    if doc.get("error"):
        print(f"error: {doc['error']}", file=sys.stderr)
    fleet = doc["results"]
    miou = fleet["fleet"]["miou"]
    print(f"fleet mIoU {'absent' if miou is None else f'{100 * miou:.2f} %'} over "
          f"{fleet['fleet']['frames']} frames of {len(fleet['per_bag'])} bags; "
          f"{fleet['failed_units']} failed units; gate: {doc['gate']['verdict']}")
    for failure in doc["gate"]["failures"]:
        print(f"  criterion failed: {failure}")
    print(f"report: {doc['outputs']['report_md']} (and fleet.json, frames.jsonl, plots)")
    return doc["exit_code"]


def register(sub) -> None:
    p = sub.add_parser(
        "eval-fleet", help="evaluate the model on many bags (Ray or serial), with a gate",
        description="Evaluate every frame of many bags (a list, or --manifest) with the same "
                    "per-frame loop as eval-bag, on Ray (an actor pool, each actor holding "
                    "one model) or serially; report per frame, bag, tag and fleet; check "
                    "--criteria. Exit 0 pass, 1 the gate failed (a criterion, or failed units: "
                    "none may fail without max_failed_units), 2 the run could not be "
                    "done or had nothing to score, 130 Ctrl-C (finished units kept for "
                    "--resume).")
    p.add_argument("bags", nargs="*", help="bags (rosbag2 folders, .mcap, .db3)")
    p.add_argument("--manifest", default=None, help="fleet manifest (YAML)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--engine", default="ray", choices=("ray", "serial"))
    p.add_argument("--address", default="local",
                   help="local (start Ray here), auto (join the running cluster) or "
                        "ray://HOST:PORT")
    p.add_argument("--workers", type=positive_int, default=1, help="actors, each with one model")
    p.add_argument("--gpus-per-worker", type=_non_negative_float, default=0.0)
    p.add_argument("--cpus-per-worker", type=positive_int, default=None,
                   help="CPUs each actor reserves and runs threads on (default: a share of "
                        "the smallest node, one CPU left there for Ray Data)")
    p.add_argument("--resume", action="store_true",
                   help="redo only units without a finished result for this configuration")
    p.add_argument("--criteria", default=None, help="criteria file (YAML)")
    p.add_argument("--baseline", default=None, help="an earlier fleet.json to compare with")
    p.add_argument("--write-bags", type=_write_bags_choice, default="none",
                   metavar="none|worst:K|all", help="write eval-bag output bags")
    p.add_argument("--max-failed-units", type=non_negative_int, default=None,
                   help="more failed units fail the gate (exit 1; default 0) and stop the "
                        "run early")
    p.add_argument("--hash-bags", action="store_true",
                   help="record a sha256 of every bag file (computed by the units, in "
                        "parallel); by default bags are identified by their metadata, sizes "
                        "and modification times")
    p.add_argument("--unit", default=None, metavar="ID",
                   help="evaluate this unit only (the re-run command of a failed unit)")
    p.add_argument("--image-topic", default=None, help="as eval-bag's")
    p.add_argument("--label-topic", default=None, help="as eval-bag's")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_segmenter_options(p)
    add_label_map_option(p)
    p.set_defaults(func=_eval_fleet)
    from .bench import register as register_bench

    register_bench(sub)
