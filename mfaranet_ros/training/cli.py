"""``mfaranet synth`` and ``mfaranet train`` (``eval-weights`` is in :mod:`..evaluation.cli`)."""
from __future__ import annotations

import argparse
import json
import sys

from ..cli_args import parse_size


def _synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..synthetic import write_dataset

    write_dataset(args.out, args.frames, args.size, args.seed, start=args.start,
                  progress=None if args.quiet else lambda it: tqdm(it, desc="synth", unit="frame"))
    print(f"wrote {args.frames} frames of {args.size[0]}x{args.size[1]} to {args.out} "
          f"(seed {args.seed})")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..model import CheckpointError
    from .config import ConfigError, load_config, parse_override
    from .engine import train

    try:
        overrides = [parse_override(item) for item in args.set or []]
        if args.output_dir:
            overrides.append(("output_dir", args.output_dir))
        cfg = load_config(args.config, overrides)
        metrics = train(cfg, resume=not args.no_resume, stop_at=args.stop_at)
    except (ConfigError, CheckpointError, FileNotFoundError) as exc:
        # a recipe, a weights file or a data folder that cannot be used: say which
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"output_dir": cfg.output_dir, **metrics}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth",
                       help="generate synthetic street scenes with Cityscapes trainId labels")
    p.add_argument("out", help="output folder (gets images/ and labels/)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--size", type=parse_size, default=(512, 1024), help="HxW (default 512x1024)")
    p.add_argument("--seed", type=int, default=0, help="frame i is determined by (seed, i)")
    p.add_argument("--start", type=int, default=0, help="index of the first frame")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_synth)

    p = sub.add_parser("train",
                       help="train MFARANet from a YAML recipe (resumes output_dir/last.pth)")
    p.add_argument("--config", required=True, help="YAML recipe, e.g. config/train_synthetic.yaml")
    p.add_argument("--output-dir", help="overrides output_dir")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.batch_size=4 (repeatable)")
    p.add_argument("--stop-at", type=int, help="stop at this iteration (resume later)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing last.pth")
    p.set_defaults(func=_train)
