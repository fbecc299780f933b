"""The one summary of a set of timings every benchmark reports: median, percentiles, rate."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence

from ..timing import summarize_times

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
    if len(samples_ms) == 0:
        raise ValueError("no samples to summarize (was the number of iterations 0?)")
    t = summarize_times(samples_ms)
    median = t["p50"]
    fps = None
    if frames_per_sample is not None:
        fps = 1e3 * frames_per_sample / median if median > 0 else float("inf")
    return Summary(median, t["p90"], t["p95"], t["p99"], t["max"], fps, int(t["count"]))
