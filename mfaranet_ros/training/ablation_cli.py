"""``mfaranet ablate``: MFARANet's parts compared, trained side by side, in one table."""
from __future__ import annotations

import argparse
import os
import sys


def _ablate(args: argparse.Namespace) -> int:
    from ..model import CheckpointError
    from .config import ConfigError, parse_override
    from .study import load_study

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        print("error: ablate runs in one process; to train a run on several, launch "
              "`torchrun ... -m mfaranet_ros.cli train --config <output_dir>/runs/<variant>/"
              "seed<N>/recipe.yaml` (written by `mfaranet ablate --prepare`), then run "
              "`mfaranet ablate` again: it finds those runs finished", file=sys.stderr)
        return 2
    try:
        overrides = [parse_override(item) for item in args.set or []]
        study = load_study(args.config, output_dir=args.output_dir, overrides=overrides)
        if args.prepare:
            from .ablation import prepare_runs

            for run in prepare_runs(study):
                print(os.path.join(run.directory, "recipe.yaml"))
            return 0
        from .ablation import run_study

        run_study(study, train_missing=not args.no_train,
                  measure_latency=not args.no_latency)
    except (ConfigError, CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate",
        help="train MFARANet variants with one recipe and seeds; mIoU, GFLOPs, latency table",
        description="Trains every (variant, seed) of a study YAML (a finished run is not "
                    "trained again), scores each checkpoint on the same held-out frames, "
                    "measures parameters, GFLOPs and latency, and writes ablation.md, "
                    "ablation.json and ablation.png in the study's output_dir. Ctrl-C keeps "
                    "what finished. See docs/ablations.md.")
    p.add_argument("--config", required=True,
                   help="study YAML, e.g. config/ablation_default.yaml")
    p.add_argument("--output-dir", help="overrides the study's output_dir")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a value of the study's training recipe for every run, e.g. "
                        "--set train.iterations=60 (repeatable)")
    p.add_argument("--prepare", action="store_true",
                   help="only write each run's training recipe (for torchrun) and list them")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: report the runs that are finished")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.set_defaults(func=_ablate)
