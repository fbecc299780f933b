"""Latency statistics, counters and the health verdict behind ``/diagnostics``.

Pure Python (no rclpy): the node turns :class:`Health` into a DiagnosticStatus.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Sequence, Tuple

from ..timing import summarize_times

__all__ = ["STAGES", "StageStats", "Window", "InputCounters", "QosEventCounters", "Health",
           "OK", "WARN", "ERROR", "assess"]

#: Per-frame stages, in the order they happen (milliseconds).
STAGES = ("decode", "preprocess", "inference", "postprocess", "publish", "end_to_end")

OK, WARN, ERROR = 0, 1, 2


class StageStats:
    """The last ``window`` samples of every stage; p50 / p95 / max over them."""

    def __init__(self, window: int = 300):
        self._samples: Dict[str, Deque[float]] = {
            s: collections.deque(maxlen=window) for s in STAGES}
        self._lock = threading.Lock()

    def add(self, times_ms: Dict[str, float]) -> None:
        with self._lock:
            for stage, value in times_ms.items():
                if stage in self._samples:
                    self._samples[stage].append(float(value))

    def summary(self) -> Dict[str, Tuple[float, float, float]]:
        """stage -> (p50, p95, max) for stages with samples."""
        with self._lock:
            snap = {s: list(v) for s, v in self._samples.items() if v}
        out = {}
        for stage, values in snap.items():
            t = summarize_times(values, (50, 95))
            out[stage] = (t["p50"], t["p95"], t["max"])
        return out


@dataclass
class Window:
    """What happened to one input over the last seconds."""

    rate_in: float = 0.0
    rate_out: float = 0.0
    dropped: int = 0
    rejected: int = 0


@dataclass
class InputCounters:
    """Counters of one camera input (the node updates them under its lock)."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    last_reject_reason: str = ""
    #: frames whose camera_info had another size (still segmented; no camera_info out)
    camera_info_mismatched: int = 0
    _marks: Deque[Tuple[float, int, int, int, int]] = field(
        default_factory=lambda: collections.deque(maxlen=64))

    def mark(self, now: float) -> None:
        """Remember the counters now (called once a second), for rates over a window."""
        self._marks.append((now, self.received, self.processed, self.dropped, self.rejected))

    def window(self, now: float, horizon: float = 5.0) -> Window:
        """Rates and counts since the oldest mark at most ``horizon`` seconds old."""
        base = next((m for m in self._marks if now - m[0] <= horizon + 1e-6), None)
        if base is None or now - base[0] <= 0:
            return Window()
        dt = now - base[0]
        return Window((self.received - base[1]) / dt, (self.processed - base[2]) / dt,
                      self.dropped - base[3], self.rejected - base[4])


@dataclass
class QosEventCounters:
    """Counts of the middleware's QoS events (incompatible QoS, lost messages)."""

    incompatible_requested: int = 0  # a publisher offers what our subscription cannot take
    incompatible_offered: int = 0    # a subscriber requests what our outputs do not offer
    messages_lost: int = 0
    last_policy: str = ""
    last_topic: str = ""
    last_event: float = 0.0          # monotonic seconds

    def total(self) -> int:
        return self.incompatible_requested + self.incompatible_offered + self.messages_lost


@dataclass
class Health:
    level: int
    message: str


def assess(*, failing: Optional[str], inputs: Dict[str, InputCounters], now: float,
           qos: QosEventCounters, publishers: Dict[str, int],
           recent: float = 10.0, degraded: Sequence[str] = ()) -> Health:
    """The node's verdict: ERROR when it cannot process, WARN when it falls behind the
    camera, rejects frames, runs without an output it offers (``degraded``: why), or the
    middleware reports QoS trouble; OK otherwise."""
    if failing:
        return Health(ERROR, f"cannot process frames: {failing}")
    warnings: List[str] = [d for d in degraded if d]
    for name, c in inputs.items():
        label = f"camera {name!r}: " if name else ""
        w = c.window(now)
        if w.dropped > 0:
            warnings.append(f"{label}falling behind the camera ({w.dropped} frames dropped "
                            f"recently; in {w.rate_in:.1f} Hz, out {w.rate_out:.1f} Hz)")
        if w.rejected > 0:
            warnings.append(f"{label}rejecting frames ({w.rejected} recently): "
                            f"{c.last_reject_reason}")
        if publishers.get(name, 0) and c.received == 0 and qos.incompatible_requested:
            warnings.append(f"{label}publishers present but no frames received "
                            f"(incompatible QoS: {qos.last_policy})")
    if qos.total() and now - qos.last_event <= recent:
        warnings.append(f"QoS events: {qos.incompatible_requested} incompatible publishers, "
                        f"{qos.incompatible_offered} incompatible subscribers, "
                        f"{qos.messages_lost} messages lost (last policy "
                        f"{qos.last_policy or '-'} on {qos.last_topic or '-'})")
    if warnings:
        return Health(WARN, "; ".join(warnings))
    return Health(OK, "ok")
