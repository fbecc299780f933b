"""``mfaranet bench-fleet``: frames/s of eval-fleet (Ray, 1 and 2 workers) against eval-bag
run bag after bag, on the same generated bags, in one run; Ray's start-up time apart.

The long-bag case: one bag of ``--long-frames`` JPEG frames, evaluated by the serial
engine as one unit and as ``--long-windows`` windows, in the same run. A window reads
only its receive-time range, so the windows cost about what one unit costs. Wall and CPU
seconds (one torch thread, so that CPU time measures the work on a shared machine), and the
bytes the units read (``rchar`` of ``/proc/self/io``, Linux).

Prints the figures and writes them as JSON. A benchmark, not a test: figures depend on
the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ...cli_args import non_negative_int, parse_size, positive_int

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


def _long_bag(root: Path, frames: int, size) -> str:
    from ..synthbag import SyntheticBagSpec, make_synthetic_bag

    path = root / f"long{frames}_{size[0]}x{size[1]}"
    if not path.exists():
        make_synthetic_bag(path, SyntheticBagSpec(frames=frames, size=size, compressed=True,
                                                  seed=100), progress=True)
    return str(path)


def _long_case(root: Path, model: Dict, label_topic: str, frames: int, windows: int,
               size, repeat: int = 1) -> Dict:
    """One long bag, serial engine: one unit, then ``windows`` windows; seconds and bytes."""
    import torch

    from mfaranet_ros.model import read_checkpoint

    from .manifest import parse_manifest
    from .run import FleetRun, run_fleet

    bag = _long_bag(root, frames, size)
    meta = read_checkpoint(model["weights"]).metadata
    step = -(-frames // windows)
    figures: Dict = {"frames": frames, "frame_size": list(size), "unit_frames": step,
                     "bag_bytes": sum(p.stat().st_size for p in Path(bag).rglob("*")
                                      if p.is_file())}

    def timed(name: str, data: Dict) -> Dict:
        run = FleetRun(manifest=parse_manifest(data, root), out=root / f"long_{name}",
                       model=model, engine="serial", progress=False)
        t0, cpu0 = time.perf_counter(), time.process_time()
        doc = run_fleet(run, meta)
        units = doc["units"].values()
        reads = [u["bytes_read"] for u in units]
        return {"s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0,
                "units_cpu_s": sum(u["cpu_s"] for u in units),
                "bytes": None if None in reads else sum(reads), "units": len(units),
                "matrix": doc["results"]["fleet"]["confusion_matrix"]}

    base = {"bags": [bag], "defaults": {"label_topic": label_topic}}
    # One torch thread: CPU time then measures the work itself on a shared machine (idle
    # OpenMP threads spin and bill CPU time when other processes hold the cores).
    torch.set_num_threads(1)
    figures["torch_threads"] = 1
    # warm-up (imports, first frames, the report's plotting): in neither figure
    timed("warmup", {**base, "defaults": {**base["defaults"], "skip_last": frames - 5}})
    runs: Dict[str, list] = {"one_unit": [], "windows": []}
    for _ in range(repeat):       # interleaved: a change of load hits both alike
        runs["one_unit"].append(timed("one_unit", base))
        runs["windows"].append(timed("windows", {**base, "unit_frames": step}))
    for name, done in runs.items():
        for key in ("s", "cpu_s", "units_cpu_s"):
            figures[f"{name}_{key}"] = float(np.median([r[key] for r in done]))
        figures[f"{name}_all_s"] = [r["s"] for r in done]
        figures[f"{name}_bytes_read"] = done[0]["bytes"]
        figures[f"{name}_units"] = done[0]["units"]
    figures["windows_vs_one_unit"] = figures["windows_s"] / figures["one_unit_s"]
    figures["windows_vs_one_unit_cpu"] = figures["windows_cpu_s"] / figures["one_unit_cpu_s"]
    figures["same_matrix"] = all(r["matrix"] == runs["one_unit"][0]["matrix"]
                                 for done in runs.values() for r in done)
    return figures


def _bench(args: argparse.Namespace) -> int:
    import torch

    from mfaranet_ros.model import MFARANet, cityscapes_metadata, save_checkpoint

    from ..synthbag import LABEL_TOPIC

    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    weights = root / "random19.pth"
    save_checkpoint(weights, MFARANet(19), cityscapes_metadata(source="bench: random"))
    model = {"weights": str(weights), "backend": "torch", "device": "cpu",
             "input_size": [64, 128]}
    long_case = _long_case(root, model, LABEL_TOPIC, args.long_frames, args.long_windows,
                           args.long_size, args.repeat) if args.long_frames else None
    short = _short_case(root, model, args.bags, args.frames) if args.bags else None
    doc = {**(short or {}), "network_input": [64, 128], "host": platform.node(),
           "cpu": _cpu_name(), "cpus": os.cpu_count(), "long_bag": long_case}
    (root / "bench_fleet.json").write_text(json.dumps(doc, indent=1))
    if short:
        print(f"{short['frames']} frames ({args.bags} bags x {args.frames}); local Ray "
              f"start-up {short['ray_startup_s']:.1f} s (not in the figures below)")
        for k, v in short["fps"].items():
            print(f"  {k:>20}: {v:7.1f} frames/s ({short['seconds'][k + '_s']:.1f} s)")
    if long_case:
        _print_long(long_case)
    print(f"json: {root / 'bench_fleet.json'}")
    return 0


def _short_case(root: Path, model: Dict, count: int, per_bag: int) -> Dict:
    """eval-bag bag after bag, then eval-fleet on Ray with 1 and 2 workers."""
    from ..synthbag import LABEL_TOPIC
    from .engine_ray import start_ray

    size = (128, 256)
    bags = _bags(root / "bags", count, per_bag, size)
    frames = count * per_bag
    t_ray = start_ray("local", workers=2)["startup_s"]
    figures = {"eval_bag_serial_s": _eval_bag_serial(bags, model, LABEL_TOPIC, root)}
    for w in (1, 2):
        figures[f"ray_{w}_workers_s"] = _fleet(bags, model, LABEL_TOPIC, root / f"r{w}", w)
    return {"bags": count, "frames_per_bag": per_bag, "frames": frames,
            "frame_size": list(size), "ray_startup_s": t_ray,
            "fps": {k[:-2]: frames / v for k, v in figures.items()}, "seconds": figures}


def _mb(count: Optional[int]) -> str:
    return "n/a" if count is None else f"{count / 1e6:.0f} MB"


def _print_long(c: Dict) -> None:
    print(f"long bag: {c['frames']} JPEG frames of {c['frame_size'][0]}x{c['frame_size'][1]} "
          f"({_mb(c['bag_bytes'])}), serial engine, same run")
    for name, label in (("one_unit", "one unit"), ("windows", f"{c['windows_units']} windows")):
        print(f"  {label:>12}: {c[name + '_s']:7.1f} s wall, {c[name + '_cpu_s']:7.1f} s CPU; "
              f"the units read {_mb(c[name + '_bytes_read'])}")
    print(f"  windows / one unit: {c['windows_vs_one_unit']:.2f}x wall, "
          f"{c['windows_vs_one_unit_cpu']:.2f}x CPU; same confusion matrix: "
          f"{c['same_matrix']}")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def register(sub) -> None:
    p = sub.add_parser("bench-fleet", help="benchmark eval-fleet on Ray against eval-bag")
    p.add_argument("--out", required=True, help="work folder (bags, results, JSON)")
    p.add_argument("--bags", type=non_negative_int, default=8,
                   help="bags of the eval-bag / Ray case (0: leave the case out)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--long-frames", type=non_negative_int, default=1000,
                   help="frames of the long-bag case (JPEG; 0: leave the case out)")
    p.add_argument("--long-windows", type=positive_int, default=10,
                   help="windows the long bag is cut into")
    p.add_argument("--repeat", type=positive_int, default=1,
                   help="long-bag runs of each kind, interleaved (the median is reported)")
    p.add_argument("--long-size", type=parse_size, default=(256, 512), metavar="HxW",
                   help="frame size of the long bag (the network input stays 64x128)")
    p.set_defaults(func=_bench)
