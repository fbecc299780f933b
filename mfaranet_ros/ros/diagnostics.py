"""diagnostic_msgs builders: the per-frame latency report and the /diagnostics statuses."""
from __future__ import annotations

from typing import Dict, Iterable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from .stats import OK, WARN, InputCounters, QosEventCounters, StageStats

__all__ = ["status", "latency_report", "stage_values", "counter_values", "qos_values",
           "camera_status"]


def status(level: int, name: str, message: str, hardware_id: str,
           values: Dict[str, str]) -> DiagnosticStatus:
    return DiagnosticStatus(level=bytes([level]), name=name, message=message,
                            hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def latency_report(header, name: str, hardware_id: str, times_ms: Dict[str, float],
                   queue_ms: float, batch_size: int, outputs: Iterable[str]) -> DiagnosticArray:
    """One frame's stage times: the input's header, one status with ``<stage>_ms`` keys."""
    values = {f"{k}_ms": f"{v:.3f}" for k, v in times_ms.items()}
    values["queue_ms"] = f"{queue_ms:.3f}"
    values["batch_size"] = str(batch_size)
    values["outputs"] = ",".join(outputs)
    report = DiagnosticArray()
    report.header = header
    report.status = [status(OK, name, "stage times in ms", hardware_id, values)]
    return report


def stage_values(stages: StageStats) -> Dict[str, str]:
    """``<stage>_p50_ms`` / ``_p95_ms`` / ``_max_ms`` for every stage with samples."""
    out = {}
    for stage, (p50, p95, vmax) in stages.summary().items():
        out[f"{stage}_p50_ms"] = f"{p50:.2f}"
        out[f"{stage}_p95_ms"] = f"{p95:.2f}"
        out[f"{stage}_max_ms"] = f"{vmax:.2f}"
    return out


def counter_values(counters: Iterable[InputCounters], now: float) -> Dict[str, str]:
    """Frame counts (summed over inputs), the last reject reason, rates over the window."""
    counters = list(counters)
    windows = [c.window(now) for c in counters]
    reasons = [c.last_reject_reason for c in counters if c.last_reject_reason]
    return {
        "frames_received": str(sum(c.received for c in counters)),
        "frames_processed": str(sum(c.processed for c in counters)),
        "frames_dropped": str(sum(c.dropped for c in counters)),
        "frames_rejected": str(sum(c.rejected for c in counters)),
        "last_reject_reason": reasons[-1] if reasons else "",
        "camera_info_mismatched": str(sum(c.camera_info_mismatched for c in counters)),
        "input_rate_hz": f"{sum(w.rate_in for w in windows):.2f}",
        "output_rate_hz": f"{sum(w.rate_out for w in windows):.2f}",
    }


def qos_values(ev: QosEventCounters) -> Dict[str, str]:
    return {"qos_incompatible_publishers": str(ev.incompatible_requested),
            "qos_incompatible_subscribers": str(ev.incompatible_offered),
            "qos_messages_lost": str(ev.messages_lost),
            "qos_last_policy": ev.last_policy, "qos_last_topic": ev.last_topic}


def camera_status(name: str, hardware_id: str, topic: str, reliability: str,
                  publishers: int, counters: InputCounters, stages: StageStats,
                  now: float) -> DiagnosticStatus:
    """One camera of a multi-camera node: WARN while it drops or rejects frames."""
    w = counters.window(now)
    level = WARN if (w.dropped or w.rejected) else OK
    message = "ok" if level == OK else f"{w.dropped} dropped, {w.rejected} rejected recently"
    values = {"topic": topic, "reliability": reliability, "publishers": str(publishers)}
    values.update(counter_values([counters], now))
    values.update(stage_values(stages))
    return status(level, name, message, hardware_id, values)
