"""The one summary of a set of times (no torch, no ROS): count, mean, min, max, percentiles.

Every figure the package reports about latency comes from :func:`summarize_times`: the
node's ``/diagnostics`` (p50, p95, max over its window), ``eval-bag``'s report (p50, p90,
p99 per stage) and the benchmarks (median, p90, p95, p99); each keeps its published keys.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

__all__ = ["summarize_times"]


def summarize_times(samples: Sequence[float],
                    percentiles: Sequence[int] = (50, 90, 95, 99)) -> Dict[str, float]:
    """``{count, mean, min, max, p<N>...}`` of ``samples`` (numpy's linear interpolation).

    Raises ValueError for no samples: a figure of nothing must not come out as NaN.
    """
    a = np.asarray(samples, np.float64)
    if a.size == 0:
        raise ValueError("no samples to summarize")
    out: Dict[str, float] = {"count": int(a.size), "mean": float(a.mean()),
                             "min": float(a.min()), "max": float(a.max())}
    for p, v in zip(percentiles, np.percentile(a, list(percentiles))):
        out[f"p{p}"] = float(v)
    return out
