"""The one summary of a set of timings every benchmark reports: median, percentiles, rate."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["Summary", "summarize"]


@dataclass(frozen=True)
class Summary:
    """Milliseconds. ``fps`` is ``frames_per_sample`` frames per median sample, or None
    for quantities that are not a rate (an overhead, a queueing delay)."""

    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    fps: Optional[float]
    n: int

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


def summarize(samples_ms: Sequence[float], frames_per_sample: Optional[int] = None) -> Summary:
    """Median, p90/p95/p99 (numpy's linear interpolation) and max of ``samples_ms``.

    Raises ValueError for an empty sequence: a benchmark that measured nothing must say so
    rather than report NaNs.
    """
    a = np.asarray(samples_ms, np.float64)
    if a.size == 0:
        raise ValueError("no samples to summarize (was the number of iterations 0?)")
    median = float(np.median(a))
    p90, p95, p99 = (float(v) for v in np.percentile(a, (90, 95, 99)))
    fps = None
    if frames_per_sample is not None:
        fps = 1e3 * frames_per_sample / median if median > 0 else float("inf")
    return Summary(median, p90, p95, p99, float(a.max()), fps, int(a.size))
