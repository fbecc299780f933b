"""``mfaranet synth``, ``mfaranet train`` and ``mfaranet eval-weights``."""
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


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..model import load_checkpoint, save_checkpoint
    from ..model.checkpoint import read_checkpoint
    from .datasets import FolderDataset, GeneratedDataset
    from .metrics import evaluate_pairs, iou_from_confusion

    torch.set_grad_enabled(False)
    model, meta = load_checkpoint(args.checkpoint, return_metadata=True)
    input_size = list(args.input_size) if args.input_size else meta.input_size
    if args.data:
        data = FolderDataset(args.data, limit=args.frames)
        described = f"folder {args.data}"
    else:
        data = GeneratedDataset(args.frames, args.size, args.seed)
        described = f"{args.frames} generated {args.size[0]}x{args.size[1]} frames, seed {args.seed}"

    def pairs():
        for i in range(len(data)):
            rgb, label = data.load(i)
            yield (rgb[..., ::-1].copy() if args.bgr else rgb), label

    conf = evaluate_pairs(model, pairs(), meta.num_classes, input_size, meta.mean, meta.std)
    miou, iou, present = iou_from_confusion(conf)
    report = {"checkpoint": args.checkpoint, "data": described, "input_size": input_size,
              "channel_order": "BGR (deliberately wrong)" if args.bgr else "RGB",
              "miou": miou, "pixel_accuracy": float(np.trace(conf) / max(conf.sum(), 1)),
              "per_class": {n: (float(v) if p else None)
                            for n, v, p in zip(meta.class_names, iou, present)},
              "absent_classes_excluded": [n for n, p in zip(meta.class_names, present) if not p]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{described}, input {input_size}, {report['channel_order']}")
        for name, value in report["per_class"].items():
            print(f"  {name:14s} {'absent' if value is None else f'{100 * value:6.2f}'}")
        print(f"  {'mIoU':14s} {100 * miou:6.2f}  (over {int(present.sum())} present classes)")
    if args.write_to:
        ckpt = read_checkpoint(args.checkpoint)
        meta = ckpt.metadata
        meta.input_size = input_size
        meta.metrics = {"heldout_miou": miou,
                        **{f"iou/{n}": float(v) for n, v, p in zip(meta.class_names, iou, present) if p}}
        if args.source:
            meta.source = args.source
        model.train(False)
        save_checkpoint(args.write_to, model, meta, half=args.half)
        # stderr: with --json, stdout holds nothing but the JSON document
        print(f"wrote {args.write_to} (metrics in its metadata)", file=sys.stderr)
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

    p = sub.add_parser("eval-weights", help="mIoU of a checkpoint on generated scenes or an image/label folder")
    p.add_argument("checkpoint")
    p.add_argument("--data", help="folder with images/ and labels/ (default: generate scenes)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--size", type=parse_size, default=(512, 1024), help="generated frame size HxW")
    p.add_argument("--seed", type=int, default=1000, help="seed of the generated held-out set")
    p.add_argument("--input-size", type=parse_size, help="network input HxW (default: the metadata's)")
    p.add_argument("--bgr", action="store_true", help="feed BGR instead of RGB (a sanity check)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--write-to", help="save the weights with these metrics in their metadata")
    p.add_argument("--half", action="store_true", help="with --write-to: store fp16")
    p.add_argument("--source", help="with --write-to: the metadata's source text")
    p.set_defaults(func=_evaluate)
