"""``mfaranet bench-fleet``: frames/s of eval-fleet (Ray, 1 and 2 workers) against eval-bag
run bag after bag, on the same generated bags, in one run; Ray's start-up time apart.

Prints the figures and writes them as JSON. A benchmark, not a test: figures depend on
the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Dict

__all__ = ["register"]


def _bags(root: Path, count: int, frames: int, size) -> list:
    from ..synthbag import SyntheticBagSpec, make_synthetic_bag

    paths = [root / f"bag{i:02d}" for i in range(count)]
    for i, path in enumerate(paths):      # a rerun in the same folder reuses its bags
        if not path.exists():
            make_synthetic_bag(path, SyntheticBagSpec(frames=frames, size=size, seed=i))
    return [str(p) for p in paths]


def _eval_bag_serial(bags, model: Dict, label_topic: str, out: Path) -> float:
    from ..offline import EvalOptions, evaluate_bag
    from .model import load_model

    seg = load_model(model)
    t0 = time.perf_counter()
    for i, bag in enumerate(bags):
        evaluate_bag(bag, out / f"eb{i}", seg, EvalOptions(
            label_topic=label_topic, write_bag=False, progress=False))
    return time.perf_counter() - t0


def _fleet(bags, model: Dict, label_topic: str, out: Path, workers: int) -> float:
    from mfaranet_ros.model import read_checkpoint

    from .manifest import manifest_from_bags
    from .run import FleetRun, run_fleet

    run = FleetRun(manifest=manifest_from_bags(bags, None, label_topic), out=out,
                   model=model, engine="ray", workers=workers, progress=False)
    t0 = time.perf_counter()
    run_fleet(run, read_checkpoint(model["weights"]).metadata)
    return time.perf_counter() - t0


def _bench(args: argparse.Namespace) -> int:
    import torch

    from mfaranet_ros.model import MFARANet, cityscapes_metadata, save_checkpoint

    from ..synthbag import LABEL_TOPIC
    from .engine_ray import start_ray

    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    weights = root / "random19.pth"
    save_checkpoint(weights, MFARANet(19), cityscapes_metadata(source="bench: random"))
    model = {"weights": str(weights), "backend": "torch", "device": "cpu",
             "input_size": [64, 128]}
    size = (128, 256)
    bags = _bags(root / "bags", args.bags, args.frames, size)
    frames = args.bags * args.frames
    t_ray = start_ray("local", workers=2)["startup_s"]
    figures = {"eval_bag_serial_s": _eval_bag_serial(bags, model, LABEL_TOPIC, root)}
    for w in (1, 2):
        figures[f"ray_{w}_workers_s"] = _fleet(bags, model, LABEL_TOPIC, root / f"r{w}", w)
    doc = {"bags": args.bags, "frames_per_bag": args.frames, "frame_size": list(size),
           "network_input": [64, 128], "ray_startup_s": t_ray, "host": platform.node(),
           "cpus": __import__("os").cpu_count(),
           "fps": {k[:-2]: frames / v for k, v in figures.items()},
           "seconds": figures}
    (root / "bench_fleet.json").write_text(json.dumps(doc, indent=1))
    print(f"{frames} frames ({args.bags} bags x {args.frames}); local Ray start-up "
          f"{t_ray:.1f} s (not in the figures below)")
    for k, v in doc["fps"].items():
        print(f"  {k:>20}: {v:7.1f} frames/s")
    print(f"json: {root / 'bench_fleet.json'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench-fleet", help="benchmark eval-fleet on Ray against eval-bag")
    p.add_argument("--out", required=True, help="work folder (bags, results, JSON)")
    p.add_argument("--bags", type=int, default=8)
    p.add_argument("--frames", type=int, default=100)
    p.set_defaults(func=_bench)
