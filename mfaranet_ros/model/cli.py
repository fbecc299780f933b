"""``mfaranet import-official`` and ``mfaranet info``."""
from __future__ import annotations

import argparse
import sys


def _import_official(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError, import_official

    try:
        meta = import_official(args.src, args.dst)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst}: {meta.num_classes} classes ({meta.dataset}); source: {meta.source}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError, read_checkpoint

    try:
        ckpt = read_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = ckpt.metadata
    n_params = sum(v.numel() for k, v in ckpt.state_dict.items()
                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    arch = m.model_architecture()
    paper = " (the paper's model)" if arch.is_paper else ""
    print(f"format:      {ckpt.kind}")
    print(f"variant:     {arch.name}{paper}")
    print(f"classes:     {m.num_classes} ({', '.join(m.class_names)})")
    print(f"dataset:     {m.dataset}")
    print(f"input size:  {m.input_size}")
    print(f"mean / std:  {m.mean} / {m.std}")
    print(f"source:      {m.source}")
    print(f"parameters:  {n_params:,}")
    if m.metrics:
        print("metrics:     " + ", ".join(f"{k}={v:.4g}" for k, v in m.metrics.items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-official",
        help="convert an official MFARANet release checkpoint to this project's format")
    p.add_argument("src",
                   help="official checkpoint ({'epoch', 'state_dict' with module. keys, ...})")
    p.add_argument("dst", help="output .pth in the project's format (weights + metadata)")
    p.set_defaults(func=_import_official)

    p = sub.add_parser("info", help="print a checkpoint's metadata")
    p.add_argument("checkpoint")
    p.set_defaults(func=_info)
