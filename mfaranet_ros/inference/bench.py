"""``mfaranet bench``: latency and throughput per backend and input size; multi-camera mode.

Single-camera rows, per backend and network input size:
- *model*: the backend's compiled graph alone (uint8 NHWC batch at network size in,
  uint8 labels out: normalisation, network and argmax, host<->device copies);
- *segmenter*: the whole :meth:`Segmenter.segment` call (uint8 frame at the source
  size in; letterbox, graph, label resize, colour and overlay out).
The baseline, measured in the same run, is plain PyTorch fp32 eager: the same graph,
NCHW contiguous memory (PyTorch's default), ``torch.inference_mode``, on the CPU.

Multi-camera mode (``--cameras N``): N cameras in one process (``segment_batch``)
against N single-camera processes running at the same time on the same machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Stats", "stats", "bench_single", "bench_cameras", "format_table", "format_camera_table"]

BASELINE = "torch-eager (baseline)"


@dataclass
class Stats:
    median_ms: float
    p90_ms: float
    p99_ms: float
    fps: float
    n: int

    def as_dict(self) -> Dict:
        return asdict(self)


def stats(samples_s: Sequence[float], frames_per_sample: int = 1) -> Stats:
    a = np.asarray(samples_s, np.float64) * 1e3
    med = float(np.median(a))
    return Stats(med, float(np.percentile(a, 90)), float(np.percentile(a, 99)),
                 1e3 * frames_per_sample / med if med > 0 else float("inf"), len(a))


def _synthetic_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width, 1), yy * 255 // max(height, 1),
                     np.full_like(xx, 128)], -1)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


@dataclass
class Row:
    backend: str
    description: str
    input_size: Tuple[int, int]
    frame_size: Tuple[int, int]
    model: Stats
    segmenter: Optional[Stats]
    pre_post_ms: Optional[float] = None       # Segmenter's own preprocess + postprocess (median)
    pre_post_pct: Optional[float] = None      # of the bare model's median
    speedup_model: Optional[float] = None     # baseline model median / this model median
    speedup_segmenter: Optional[float] = None
    error: Optional[str] = None
    extra: Dict = field(default_factory=dict)

    def as_dict(self) -> Dict:
        d = asdict(self)
        d["model"] = self.model.as_dict() if self.model else None
        d["segmenter"] = self.segmenter.as_dict() if self.segmenter else None
        return d


def random_checkpoint(directory: str) -> str:
    """A random-init 19-class checkpoint (timings do not depend on the weights)."""
    import torch

    from ..model import MFARANet, cityscapes_metadata, save_checkpoint

    path = os.path.join(directory, "random19.pth")
    torch.manual_seed(0)
    save_checkpoint(path, MFARANet(19), cityscapes_metadata(source="bench: random init"))
    return path


class _Subject:
    """One segmenter under test, with its inputs and collected samples."""

    def __init__(self, name: str, seg, frame_size: Tuple[int, int]) -> None:
        self.name, self.seg = name, seg
        self.pixels = _synthetic_frame(*seg.network_shape(frame_size))[None]
        self.frame = _synthetic_frame(*frame_size, seed=1)
        self.model_s: List[float] = []
        self.segment_s: List[float] = []
        self.pre_post_ms: List[float] = []

    def step(self, record: bool) -> None:
        t0 = time.perf_counter()
        self.seg.backend.run(self.pixels)
        t1 = time.perf_counter()
        r = self.seg.segment(self.frame, color=True, overlay=True)
        t2 = time.perf_counter()
        if record:
            self.model_s.append(t1 - t0)
            self.segment_s.append(t2 - t1)
            self.pre_post_ms.append(r.timings["preprocess"] + r.timings["postprocess"])


def bench_single(weights: str, backends: Sequence[str], input_sizes: Sequence[Tuple[int, int]],
                 frame_size: Optional[Tuple[int, int]] = None, iterations: int = 10,
                 warmup: int = 2, pruned: bool = False, precision: str = "fp32",
                 device: Optional[str] = None, cache_dir: Optional[str] = None,
                 log=print) -> List[Row]:
    """One baseline row and one row per backend for every input size.

    The subjects are measured interleaved (baseline, backend 1, backend 2, baseline, ...)
    so that a background load that comes and goes weighs on all of them alike.
    """
    from ..model import read_checkpoint
    from .backends import BackendUnavailable, ModelSource, create_backend
    from .backends.torch_backend import TorchBackend
    from .cache import resolve_cache_dir
    from .segmenter import Segmenter

    rows: List[Row] = []
    source = ModelSource(weights, pruned=pruned)
    meta = read_checkpoint(weights).metadata
    cache = resolve_cache_dir(cache_dir)
    for size in input_sizes:
        tag = f"[{size[0]}x{size[1]}]"
        fsize = tuple(frame_size) if frame_size else tuple(size)
        subjects = [_Subject(BASELINE, Segmenter(
            TorchBackend(source, "cpu", "fp32", channels_last=False), meta, size), fsize)]
        unavailable: List[Row] = []
        for name in backends:
            try:
                be = create_backend(name, source, device=device, precision=precision, cache=cache)
            except (BackendUnavailable, ValueError) as exc:
                log(f"{tag} {name}: unavailable: {exc}")
                unavailable.append(Row(name, "", tuple(size), fsize, None, None, error=str(exc)))
                continue
            subjects.append(_Subject(name, Segmenter(be, meta, size), fsize))
        for sub in subjects:
            log(f"{tag} {sub.name}: {sub.seg.describe()}: warm-up ...")
            sub.seg.warmup(fsize)
        log(f"{tag} measuring {len(subjects)} subjects interleaved, {iterations} iterations ...")
        for i in range(warmup + iterations):
            for sub in subjects:
                sub.step(record=i >= warmup)
        base_m, base_s = stats(subjects[0].model_s), stats(subjects[0].segment_s)
        for sub in subjects:
            m, s = stats(sub.model_s), stats(sub.segment_s)
            pp = float(np.median(sub.pre_post_ms))
            rows.append(Row(sub.name, sub.seg.describe(), tuple(size), fsize, m, s, pp,
                            100 * pp / m.median_ms, base_m.median_ms / m.median_ms,
                            base_s.median_ms / s.median_ms))
        rows.extend(unavailable)
        del subjects
    return rows


def format_table(rows: Sequence[Row]) -> str:
    head = (f"{'backend':<24} {'input':>9} {'frame':>9} | {'model med/p90/p99 ms':>22} {'FPS':>6} "
            f"{'x eager':>7} | {'segmenter med/p90/p99 ms':>25} {'FPS':>6} {'x eager':>7} | "
            f"{'pre+post ms':>11} {'% model':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        size = f"{r.input_size[0]}x{r.input_size[1]}"
        fsz = f"{r.frame_size[0]}x{r.frame_size[1]}"
        if r.error:
            lines.append(f"{r.backend:<24} {size:>9} {fsz:>9} | unavailable: {r.error[:90]}")
            continue
        m, s = r.model, r.segmenter
        lines.append(
            f"{r.backend:<24} {size:>9} {fsz:>9} | "
            f"{m.median_ms:>8.1f}/{m.p90_ms:>6.1f}/{m.p99_ms:>6.1f} {m.fps:>6.2f} {r.speedup_model:>6.2f}x | "
            f"{s.median_ms:>9.1f}/{s.p90_ms:>7.1f}/{s.p99_ms:>7.1f} {s.fps:>6.2f} {r.speedup_segmenter:>6.2f}x | "
            f"{r.pre_post_ms:>11.2f} {r.pre_post_pct:>6.2f}%")
    return "\n".join(lines)


# ------------------------------------------------------------------------ multi-camera

def _worker(spec: Dict) -> None:
    """Child process: build a segmenter, warm up, say ready, wait for go, run, report."""
    import resource

    from .segmenter import Segmenter

    seg = Segmenter.from_checkpoint(spec["weights"], backend=spec["backend"], device=spec["device"],
                                    precision=spec["precision"], input_size=spec["input_size"],
                                    pruned=spec["pruned"], cache_dir=spec["cache_dir"])
    n = spec["batch"]
    frames = [_synthetic_frame(*spec["frame_size"], seed=i) for i in range(n)]
    for _ in range(max(1, spec["warmup"])):
        seg.segment_batch(frames)
    cuda = seg.device.startswith("cuda")
    if cuda:
        import torch
        torch.cuda.reset_peak_memory_stats()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    latencies = []
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall_start = time.time()  # wall clock: comparable across the worker processes
    t_start = time.perf_counter()
    for _ in range(spec["iterations"]):
        t0 = time.perf_counter()
        seg.segment_batch(frames, color=True, overlay=True)
        latencies.append(time.perf_counter() - t0)
    t_end = time.perf_counter()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    out = {"cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),"latencies_s": latencies, "elapsed_s": t_end - t_start, "frames": n * spec["iterations"],
           "wall_start": wall_start, "wall_end": wall_start + (t_end - t_start),
           "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
           "backend": seg.describe()}
    if cuda:
        import torch
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out), flush=True)


class _RssSampler(threading.Thread):
    """Peak of the summed RSS of a set of processes, sampled every 20 ms."""

    def __init__(self, pids: Sequence[int]) -> None:
        super().__init__(daemon=True)
        import psutil
        self._procs = [psutil.Process(p) for p in pids]
        self.peak_mb = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil
        while not self._halt.is_set():
            total = 0
            for p in self._procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._halt.wait(0.02)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak_mb


def _run_group(specs: List[Dict], timeout: float) -> Dict:
    """Starts one process per spec, releases them together, collects their reports."""
    cmd = [sys.executable, "-m", "mfaranet_ros.inference.bench", "--worker"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # stderr to files, not pipes: a chatty worker must not block on a full pipe.
    errs = [tempfile.TemporaryFile(mode="w+") for _ in specs]
    procs = [subprocess.Popen(cmd + [json.dumps(s)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=e, text=True, env=env) for s, e in zip(specs, errs)]

    def stderr_of(i: int) -> str:
        errs[i].seek(0)
        return errs[i].read()[-2000:]

    sampler = _RssSampler([p.pid for p in procs])
    sampler.start()
    try:
        for i, p in enumerate(procs):
            line = p.stdout.readline()
            if not line or not json.loads(line).get("ready"):
                p.wait()
                raise RuntimeError(f"bench worker failed to start: {stderr_of(i)}")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        reports = []
        for i, p in enumerate(procs):
            out, _ = p.communicate(timeout=timeout)
            if p.returncode != 0 or not out.strip():
                raise RuntimeError(f"bench worker failed (rc {p.returncode}): {stderr_of(i)}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        peak = sampler.stop()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for e in errs:
            e.close()
    frames = sum(r["frames"] for r in reports)
    # From the first worker's first frame to the last worker's last frame (process start-up
    # and teardown excluded).
    wall = max(r["wall_end"] for r in reports) - min(r["wall_start"] for r in reports)
    lat = [x for r in reports for x in r["latencies_s"]]
    return {
        "processes": len(specs),
        "frames": frames,
        "wall_s": wall,
        "throughput_fps": frames / wall,
        "latency": stats(lat).as_dict(),
        # CPU seconds per frame: unlike frames/s, not skewed by how the scheduler shares
        # the cores between these processes and whatever else runs on the machine.
        "cpu_s_per_frame": sum(r["cpu_s"] for r in reports) / frames,
        "peak_rss_mb_sum": peak,
        "maxrss_mb_per_process": [r["maxrss_mb"] for r in reports],
        "gpu_peak_mb_sum": sum(r["gpu_peak_mb"] for r in reports) if all("gpu_peak_mb" in r for r in reports) else None,
        "backend": reports[0]["backend"],
    }


def bench_cameras(weights: str, cameras: int, backend: str = "auto", input_size=(512, 1024),
                  frame_size=None, iterations: int = 5, warmup: int = 1, pruned: bool = False,
                  precision: str = "fp32", device: Optional[str] = None,
                  cache_dir: Optional[str] = None, timeout: float = 3600.0, log=print) -> Dict:
    """N cameras batched in one process vs N single-camera processes, same run."""
    base = {"weights": os.fspath(weights), "backend": backend, "device": device,
            "precision": precision, "input_size": list(input_size) if input_size else None,
            "pruned": pruned, "cache_dir": os.fspath(cache_dir) if cache_dir else None,
            "frame_size": list(frame_size or input_size), "iterations": iterations, "warmup": warmup}
    # Build the artifact once up front so neither side pays for an export.
    from .segmenter import Segmenter
    Segmenter.from_checkpoint(weights, backend=backend, device=device, precision=precision,
                              input_size=input_size, pruned=pruned,
                              cache_dir=cache_dir).warmup(tuple(base["frame_size"]))
    log(f"[cameras={cameras}] one process, batch of {cameras} ...")
    batched = _run_group([dict(base, batch=cameras)], timeout)
    log(f"[cameras={cameras}] {cameras} processes, one camera each ...")
    separate = _run_group([dict(base, batch=1) for _ in range(cameras)], timeout)
    ratios = {
        "throughput": batched["throughput_fps"] / separate["throughput_fps"],
        "median_latency": batched["latency"]["median_ms"] / separate["latency"]["median_ms"],
        "peak_rss": batched["peak_rss_mb_sum"] / separate["peak_rss_mb_sum"],
        "cpu_per_frame": batched["cpu_s_per_frame"] / separate["cpu_s_per_frame"],
    }
    if batched["gpu_peak_mb_sum"] and separate["gpu_peak_mb_sum"]:
        ratios["gpu_peak"] = batched["gpu_peak_mb_sum"] / separate["gpu_peak_mb_sum"]
    return {"cameras": cameras, "input_size": base["input_size"], "frame_size": base["frame_size"],
            "batched": batched, "separate": separate, "ratios_batched_over_separate": ratios}


def format_camera_table(results: Sequence[Dict]) -> str:
    head = (f"{'N':>2} {'mode':<22} | {'frames/s (all cams)':>19} | {'median latency ms':>17} | "
            f"{'CPU s/frame':>11} | {'peak RSS MB (sum)':>17} | {'GPU peak MB':>11}")
    lines = [head, "-" * len(head)]
    for r in results:
        for mode, label in (("batched", "1 process, batched"), ("separate", f"{r['cameras']} processes")):
            g = r[mode]
            gpu = f"{g['gpu_peak_mb_sum']:.0f}" if g["gpu_peak_mb_sum"] else "-"
            lines.append(f"{r['cameras']:>2} {label:<22} | {g['throughput_fps']:>19.3f} | "
                         f"{g['latency']['median_ms']:>17.1f} | {g['cpu_s_per_frame']:>11.3f} | "
                         f"{g['peak_rss_mb_sum']:>17.0f} | {gpu:>11}")
        q = r["ratios_batched_over_separate"]
        lines.append(f"{r['cameras']:>2} {'ratio batched/separate':<22} | {q['throughput']:>18.2f}x | "
                     f"{q['median_latency']:>16.2f}x | {q['cpu_per_frame']:>10.2f}x | {q['peak_rss']:>16.2f}x | "
                     f"{(format(q['gpu_peak'], '.2f') + 'x') if 'gpu_peak' in q else '-':>11}")
    return "\n".join(lines)


def _main_worker(argv: Sequence[str]) -> int:
    _worker(json.loads(argv[0]))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--worker":
        sys.exit(_main_worker(sys.argv[2:]))
    print("internal worker entry point; use `mfaranet bench`", file=sys.stderr)
    sys.exit(2)
