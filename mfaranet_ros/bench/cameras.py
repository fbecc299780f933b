"""The multi-camera process benchmark: N cameras batched in one process against N
single-camera processes running at the same time on the same machine.

Each side runs in child processes (see :mod:`.processes`) released together once every one
has loaded and warmed up its Segmenter, so process start-up and model loading stay out of
the figures. A batched process calls :meth:`Segmenter.segment_batch` on N frames; a
separate one segments one frame per call.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .backends import BackendPrecision
from .frames import street_frame
from .processes import child_env, own_peak_rss_mb, run_workers
from .stats import summarize

__all__ = ["bench_cameras", "format_camera_table", "segmenter_worker"]

log = logging.getLogger(__name__)

WORKER = "mfaranet_ros.bench.cameras:segmenter_worker"


def _worker_segmenter(spec: Dict):
    from ..inference.segmenter import Segmenter

    return Segmenter.from_checkpoint(
        spec["weights"], backend=spec["backend"], device=spec["device"],
        precision=spec["precision"], input_size=spec["input_size"], pruned=spec["pruned"],
        cache_dir=spec["cache_dir"])


def segmenter_worker(spec: Dict, ready: Callable[[], None]) -> Dict:
    """Child process: build and warm up a segmenter, wait for the start, run, report."""
    import torch

    seg = _worker_segmenter(spec)
    frames = [street_frame(spec["frame_size"], index=i) for i in range(spec["batch"])]
    for _ in range(max(1, spec["warmup"])):
        seg.segment_batch(frames)
    cuda = seg.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    ready()
    latencies_ms: List[float] = []
    cpu0 = os.times()
    wall_start = time.time()   # wall clock: comparable across the worker processes
    t_start = time.perf_counter()
    for _ in range(spec["iterations"]):
        t0 = time.perf_counter()
        seg.segment_batch(frames, color=True, overlay=True)
        latencies_ms.append((time.perf_counter() - t0) * 1e3)
    elapsed = time.perf_counter() - t_start
    cpu1 = os.times()
    return {"cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
            "latencies_ms": latencies_ms, "batch": spec["batch"],
            "frames": spec["batch"] * spec["iterations"],
            "wall_start": wall_start, "wall_end": wall_start + elapsed,
            "maxrss_mb": own_peak_rss_mb(), "backend": seg.describe(),
            "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


def _group(specs: List[Dict], timeout: float) -> Dict:
    """Runs one group of workers together and sums up what they report."""
    reports = run_workers(WORKER, specs, child_env(), timeout)
    frames = sum(r["frames"] for r in reports)
    # From the first worker's first frame to the last worker's last frame.
    wall = max(r["wall_end"] for r in reports) - min(r["wall_start"] for r in reports)
    latencies = [x for r in reports for x in r["latencies_ms"]]
    gpu = [r["gpu_peak_mb"] for r in reports]
    return {
        "processes": len(specs),
        "frames": frames,
        "wall_s": wall,
        "throughput_fps": frames / wall,
        "latency": summarize(latencies, reports[0]["batch"]).as_dict(),
        # CPU seconds per frame: unlike frames/s, not skewed by how the scheduler shares
        # the cores between these processes and whatever else runs on the machine.
        "cpu_s_per_frame": sum(r["cpu_s"] for r in reports) / frames,
        "peak_rss_mb_sum": sum(r["maxrss_mb"] for r in reports),
        "maxrss_mb_per_process": [r["maxrss_mb"] for r in reports],
        "gpu_peak_mb_sum": sum(gpu) if all(g is not None for g in gpu) else None,
        "backend": reports[0]["backend"],
    }


def _ratios(batched: Dict, separate: Dict) -> Dict[str, float]:
    ratios = {
        "throughput": batched["throughput_fps"] / separate["throughput_fps"],
        "median_latency": batched["latency"]["median_ms"] / separate["latency"]["median_ms"],
        "peak_rss": batched["peak_rss_mb_sum"] / separate["peak_rss_mb_sum"],
        "cpu_per_frame": batched["cpu_s_per_frame"] / separate["cpu_s_per_frame"],
    }
    if batched["gpu_peak_mb_sum"] and separate["gpu_peak_mb_sum"]:
        ratios["gpu_peak"] = batched["gpu_peak_mb_sum"] / separate["gpu_peak_mb_sum"]
    return ratios


def bench_cameras(weights: str, cameras: int, pair: BackendPrecision,
                  input_size: Optional[Tuple[int, int]] = (512, 1024),
                  frame_size: Optional[Tuple[int, int]] = None, iterations: int = 5,
                  warmup: int = 1, pruned: bool = False, device: Optional[str] = None,
                  cache_dir: Optional[str] = None, timeout: float = 3600.0) -> Dict:
    """N cameras batched in one process vs N single-camera processes, same run."""
    from ..inference.segmenter import Segmenter

    fsize = list(frame_size or input_size or ())
    if len(fsize) != 2:
        raise ValueError("a full-resolution input needs a frame size")
    base = {"weights": os.fspath(weights), "backend": pair.backend, "device": device,
            "precision": pair.precision, "input_size": list(input_size) if input_size else None,
            "pruned": pruned, "cache_dir": os.fspath(cache_dir) if cache_dir else None,
            "frame_size": fsize, "iterations": iterations, "warmup": warmup}
    # Build the artifact once up front so neither side pays for an export.
    Segmenter.from_checkpoint(weights, backend=pair.backend, device=device,
                              precision=pair.precision, input_size=input_size, pruned=pruned,
                              cache_dir=cache_dir).warmup(tuple(fsize))
    log.info("[%s, cameras=%d] one process, batch of %d ...", pair.label, cameras, cameras)
    batched = _group([dict(base, batch=cameras)], timeout)
    log.info("[%s, cameras=%d] %d processes, one camera each ...", pair.label, cameras, cameras)
    separate = _group([dict(base, batch=1) for _ in range(cameras)], timeout)
    return {"cameras": cameras, "backend": pair.backend, "precision": pair.precision,
            "input_size": base["input_size"], "frame_size": fsize, "batched": batched,
            "separate": separate, "ratios_batched_over_separate": _ratios(batched, separate)}


def _camera_lines(r: Dict) -> List[str]:
    lines = []
    for mode, label in (("batched", "1 process, batched"),
                        ("separate", f"{r['cameras']} processes")):
        g = r[mode]
        gpu = f"{g['gpu_peak_mb_sum']:.0f}" if g["gpu_peak_mb_sum"] else "-"
        lines.append(f"{r['cameras']:>2} {label:<22} | {g['throughput_fps']:>19.3f} | "
                     f"{g['latency']['median_ms']:>17.1f} | {g['cpu_s_per_frame']:>11.3f} | "
                     f"{g['peak_rss_mb_sum']:>17.0f} | {gpu:>11}")
    q = r["ratios_batched_over_separate"]
    gpu = f"{q['gpu_peak']:.2f}x" if "gpu_peak" in q else "-"
    lines.append(f"{r['cameras']:>2} {'ratio batched/separate':<22} | {q['throughput']:>18.2f}x"
                 f" | {q['median_latency']:>16.2f}x | {q['cpu_per_frame']:>10.2f}x | "
                 f"{q['peak_rss']:>16.2f}x | {gpu:>11}")
    return lines


def format_camera_table(results: Sequence[Dict]) -> str:
    """One block per backend and input size, three lines per camera count."""
    head = (f"{'N':>2} {'mode':<22} | {'frames/s (all cams)':>19} | {'median latency ms':>17} | "
            f"{'CPU s/frame':>11} | {'peak RSS MB (sum)':>17} | {'GPU peak MB':>11}")
    lines: List[str] = []
    title = None
    for r in results:
        size = "x".join(map(str, r["input_size"])) if r["input_size"] else "full"
        this = (f"{r['batched']['backend']} ({r['backend']}:{r['precision']}), "
                f"network input {size}, frames {r['frame_size'][0]}x{r['frame_size'][1]}")
        if this != title:
            title = this
            lines += ["", title, head, "-" * len(head)]
        lines += _camera_lines(r)
    return "\n".join(lines[1:])
