"""The Segmenter benchmark: every backend against torch fp32 eager, interleaved, one process.

Per backend and network input size, two timings:

- *model*: the backend's compiled graph alone (a uint8 NHWC batch at network size in,
  uint8 labels out: normalisation, network and argmax, host<->device copies);
- *segmenter*: the whole :meth:`Segmenter.segment` call (a uint8 frame at the source size
  in; letterbox, graph, label resize, colour and overlay out).

The baseline, measured in the same run, is plain PyTorch fp32 eager: the same graph, NCHW
contiguous memory (PyTorch's default), ``torch.inference_mode``, on the CPU. The subjects
run interleaved (baseline, backend 1, backend 2, baseline, ...), so a background load that
comes and goes weighs on all of them alike; each one's labels on the same street scene are
compared with the baseline's (``label_agreement``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .backends import BackendPrecision
from .frames import street_frame
from .stats import Summary, summarize

__all__ = ["BASELINE", "Row", "bench_segmenter", "format_table"]

log = logging.getLogger(__name__)

BASELINE = "torch-eager (baseline)"


@dataclass
class Row:
    """One subject at one input size; ``error`` set (timings None) when it cannot run."""

    backend: str
    precision: str
    description: str
    input_size: Optional[Tuple[int, int]]     # None: full resolution
    frame_size: Tuple[int, int]
    model: Optional[Summary]
    segmenter: Optional[Summary]
    pre_post_ms: Optional[float] = None       # Segmenter's own preprocess + postprocess (median)
    pre_post_pct: Optional[float] = None      # of the bare model's median
    speedup_model: Optional[float] = None     # baseline model median / this model median
    speedup_segmenter: Optional[float] = None
    label_agreement: Optional[float] = None   # fraction of pixels labelled as the baseline does
    error: Optional[str] = None
    #: for ``backend:auto``: what was chosen (``precision``), tried and measured
    precision_choice: Optional[Dict[str, object]] = None

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


def _run_model(seg, pixels: np.ndarray) -> None:
    """The bare network call (the backend and its array copies, no pre/post-processing)."""
    seg.run_network(pixels)


class _Subject:
    """One segmenter under test with the timings collected so far."""

    def __init__(self, name: str, precision: str, seg, choice=None) -> None:
        self.name, self.precision, self.seg = name, precision, seg
        self.choice = choice   # a PrecisionChoice for precision auto
        self.model_ms: List[float] = []
        self.segment_ms: List[float] = []
        self.pre_post_ms: List[float] = []
        self.labels: Optional[np.ndarray] = None

    def step(self, pixels: np.ndarray, frame: np.ndarray, record: bool) -> None:
        t0 = time.perf_counter()
        _run_model(self.seg, pixels)
        t1 = time.perf_counter()
        result = self.seg.segment(frame, color=True, overlay=True)
        t2 = time.perf_counter()
        self.labels = result.labels
        if record:
            self.model_ms.append((t1 - t0) * 1e3)
            self.segment_ms.append((t2 - t1) * 1e3)
            self.pre_post_ms.append(result.timings["preprocess"] + result.timings["postprocess"])

    def row(self, base: "_Subject", input_size, frame_size) -> Row:
        m, s = summarize(self.model_ms, 1), summarize(self.segment_ms, 1)
        base_m, base_s = summarize(base.model_ms, 1), summarize(base.segment_ms, 1)
        pre_post = float(np.median(self.pre_post_ms))
        return Row(self.name, self.precision, self.seg.describe(), input_size, frame_size, m, s,
                   pre_post, 100 * pre_post / m.median_ms, base_m.median_ms / m.median_ms,
                   base_s.median_ms / s.median_ms,
                   float(np.mean(self.labels == base.labels)),
                   precision_choice=self.choice.as_dict() if self.choice else None)


def _subjects(source, pairs: Sequence[BackendPrecision], size, frame_size, device, cache
              ) -> Tuple[List[_Subject], List[Row]]:
    """The baseline first, then one subject per pair that loads; a row for each that does not."""
    from ..inference.backends import BackendUnavailable
    from ..inference.backends.torch_backend import TorchBackend
    from ..inference.segmenter import Segmenter

    meta = source.metadata
    baseline = TorchBackend(source, "cpu", "fp32", channels_last=False)
    subjects = [_Subject(BASELINE, "fp32", Segmenter(baseline, meta, size))]
    failed: List[Row] = []
    for pair in pairs:
        try:
            backend, choice = _backend(source, pair, size or frame_size, device, cache)
        except (BackendUnavailable, ValueError) as exc:
            log.warning("%s: unavailable: %s", pair.label, exc)
            failed.append(Row(pair.backend, pair.precision, "", size, frame_size, None, None,
                              error=str(exc)))
            continue
        precision = f"auto:{backend.precision}" if choice else pair.precision
        subjects.append(_Subject(pair.backend, precision, Segmenter(backend, meta, size), choice))
    return subjects, failed


def _backend(source, pair: BackendPrecision, network_size, device, cache):
    """``(backend, None)`` for a named precision; ``(backend, its PrecisionChoice)`` for
    ``auto``, chosen and measured at the network input size."""
    from ..inference.backends import create_backend
    from ..names import AUTO_PRECISION

    if pair.precision == AUTO_PRECISION:
        from ..inference.auto_precision import select_precision

        return select_precision(pair.backend, source, device=device, cache=cache,
                                network_size=network_size)
    return create_backend(pair.backend, source, device=device, precision=pair.precision,
                          cache=cache), None


def _measure(subjects: Sequence[_Subject], size, frame_size, iterations: int,
             warmup: int) -> None:
    """Warm-up, then ``warmup + iterations`` rounds, every subject once per round."""
    network = subjects[0].seg.network_shape(frame_size)
    pixels = street_frame(network, index=0)[None]   # (1, H, W, 3) uint8 at network size
    frame = street_frame(frame_size, index=1)        # (h, w, 3) uint8 at the source size
    for sub in subjects:
        log.info("%s %s: %s: warm-up ...", _tag(size), sub.name, sub.seg.describe())
        sub.seg.warmup(frame_size)
    log.info("%s measuring %d subjects interleaved, %d iterations ...", _tag(size),
             len(subjects), iterations)
    for i in range(warmup + iterations):
        for sub in subjects:
            sub.step(pixels, frame, record=i >= warmup)


def _tag(size) -> str:
    return f"[{size[0]}x{size[1]}]" if size else "[full]"


def bench_segmenter(weights: str, pairs: Sequence[BackendPrecision],
                    input_sizes: Sequence[Optional[Tuple[int, int]]],
                    frame_size: Optional[Tuple[int, int]] = None, iterations: int = 10,
                    warmup: int = 2, pruned: bool = False, device: Optional[str] = None,
                    cache_dir: Optional[str] = None) -> List[Row]:
    """One baseline row and one row per backend pair for every input size.

    ``input_sizes``: network inputs (None: full resolution, which needs ``frame_size``);
    ``frame_size``: the source frames (default: each input size).
    """
    from ..inference.backends import ModelSource
    from ..inference.cache import resolve_cache_dir

    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    source = ModelSource(weights, pruned=pruned)
    cache = resolve_cache_dir(cache_dir)
    rows: List[Row] = []
    for size in input_sizes:
        fsize = tuple(frame_size or size or ())
        if len(fsize) != 2:
            raise ValueError("a full-resolution input needs a frame size")
        subjects, failed = _subjects(source, pairs, size, fsize, device, cache)
        _measure(subjects, size, fsize, iterations, warmup)
        rows.extend(sub.row(subjects[0], size, fsize) for sub in subjects)
        rows.extend(failed)
        del subjects   # free the models before the next size
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table, one line per row."""
    head = (f"{'backend':<24} {'prec':<9} {'input':>9} {'frame':>9} | "
            f"{'model med/p90/p99 ms':>22} {'FPS':>6} {'x eager':>7} | "
            f"{'segmenter med/p90/p99 ms':>25} {'FPS':>6} {'x eager':>7} | "
            f"{'pre+post ms':>11} {'% model':>7} | {'labels':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        size = f"{r.input_size[0]}x{r.input_size[1]}" if r.input_size else "full"
        frame = f"{r.frame_size[0]}x{r.frame_size[1]}"
        start = f"{r.backend:<24} {r.precision:<9} {size:>9} {frame:>9}"
        if r.error:
            lines.append(f"{start} | unavailable: {r.error[:90]}")
            continue
        m, s = r.model, r.segmenter
        lines.append(
            f"{start} | {m.median_ms:>8.1f}/{m.p90_ms:>6.1f}/{m.p99_ms:>6.1f} {m.fps:>6.2f} "
            f"{r.speedup_model:>6.2f}x | {s.median_ms:>9.1f}/{s.p90_ms:>7.1f}/{s.p99_ms:>7.1f} "
            f"{s.fps:>6.2f} {r.speedup_segmenter:>6.2f}x | {r.pre_post_ms:>11.2f} "
            f"{r.pre_post_pct:>6.2f}% | {100 * r.label_agreement:>6.2f}%")
    return "\n".join(lines)
