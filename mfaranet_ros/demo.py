"""``mfaranet demo``: the README's main command (interim: one generated frame)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    import torch

    from .model import MFARANet, cityscapes_metadata, load_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.weights:
        model, meta = load_checkpoint(args.weights, return_metadata=True)
    else:
        torch.manual_seed(0)
        model, meta = MFARANet(19).eval(), cityscapes_metadata(source="random init")
    h, w = 256, 512
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx * 255 // w), (yy * 255 // h), np.full_like(xx, 128)], -1).astype(np.uint8)
    x = (torch.from_numpy(rgb).permute(2, 0, 1).float() - torch.tensor(meta.mean)[:, None, None])
    x = (x / torch.tensor(meta.std)[:, None, None]).unsqueeze(0)
    with torch.inference_mode():
        labels = model(x).argmax(1)[0].numpy().astype(np.uint8)
    color = np.asarray(meta.palette, np.uint8)[labels]
    cv2.imwrite(str(out / "color.png"), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
    print(f"wrote {out / 'color.png'} ({meta.source})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the built-in demo")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--weights", default=None, help="checkpoint (default: the demo weights)")
    p.set_defaults(func=_demo)
