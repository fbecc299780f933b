"""diagnostic_msgs builders: the per-frame latency report and the /diagnostics statuses."""
from __future__ import annotations

import time
from typing import Any, Dict, Iterable, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from .qos import reliability_name
from .stats import ERROR, OK, WARN, InputCounters, QosEventCounters, StageStats, assess

__all__ = ["status", "latency_report", "stage_values", "counter_values", "qos_values",
           "input_values", "unconfigured_status", "node_status", "camera_status",
           "running_statuses"]


def status(level: int, name: str, message: str, hardware_id: str,
           values: Dict[str, str]) -> DiagnosticStatus:
    return DiagnosticStatus(level=bytes([level]), name=name, message=message,
                            hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def latency_report(header, name: str, hardware_id: str, times_ms: Dict[str, float],
                   batch_size: int, outputs: Iterable[str]) -> DiagnosticArray:
    """One frame's stage times: the input's header, one status with ``<stage>_ms`` keys
    (the stages add up to ``end_to_end_ms``)."""
    values = {f"{k}_ms": f"{v:.3f}" for k, v in times_ms.items()}
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


def input_values(cameras, now: float) -> Dict[str, str]:
    """The inputs of a node (its :class:`~.inputs.CameraInput` s): topics, reliability,
    publishers, and the counters summed over them."""
    values = {"input_topics": " ".join(c.resolved_topic for c in cameras),
              "input_reliability": " ".join(reliability_name(c.reliability) for c in cameras),
              "publishers": str(sum(c.publisher_count for c in cameras))}
    values.update(counter_values((c.counters for c in cameras), now))
    return values


def unconfigured_status(name: str, values: Dict[str, str],
                        configure_error: str) -> DiagnosticStatus:
    """Managed node before configure (or after cleanup): no model, why if it failed."""
    values = dict(values, last_error=configure_error)
    if configure_error:
        return status(ERROR, name, f"configure failed: {configure_error}", "", values)
    return status(OK, name, "no model loaded: waiting for configure", "", values)


def node_status(name: str, health, active: bool, hardware_id: str,
                values: Dict[str, str]) -> DiagnosticStatus:
    """The node's status: the health verdict (:func:`~.stats.assess`) and its values; a
    healthy node that is not subscribed says so."""
    message = health.message
    if not active and health.level == OK:
        message = "inactive: model loaded and warm, not subscribed"
    return status(health.level, name, message, hardware_id, values)


def camera_status(name: str, hardware_id: str, cam, now: float) -> DiagnosticStatus:
    """One camera of a multi-camera node: WARN while it drops or rejects frames."""
    w = cam.counters.window(now)
    level = WARN if (w.dropped or w.rejected) else OK
    message = "ok" if level == OK else f"{w.dropped} dropped, {w.rejected} rejected recently"
    values = {"topic": cam.resolved_topic, "reliability": reliability_name(cam.reliability),
              "publishers": str(cam.publisher_count)}
    values.update(counter_values([cam.counters], now))
    values.update(stage_values(cam.stages))
    return status(level, name, message, hardware_id, values)


def running_statuses(name: str, node_name: str, seg: Any, cfg: Any, cameras: List[Any],
                     lock: Any, *, active: bool, failing: Optional[str],
                     errors: Tuple[int, str], failed_sizes: str, no_confidence: str,
                     input_size: str, qos: QosEventCounters, stages: StageStats,
                     extra: Dict[str, str]) -> List[DiagnosticStatus]:
    """A configured node's statuses: the node's, then one per camera of a multi-camera node.

    ``no_confidence`` (why ``~/confidence`` is off) makes the node WARN, never ERROR: labels,
    colour and overlay go on.
    """
    now = time.monotonic()
    with lock:
        for cam in cameras:
            cam.counters.mark(now)
    inputs = {c.key: c.counters for c in cameras}
    health = assess(failing=failing, inputs=inputs, now=now, qos=qos,
                    publishers={c.key: c.publisher_count for c in cameras},
                    degraded=[no_confidence])
    values = dict(extra)
    values.update({"backend": seg.backend_name, "device": str(seg.device),
                   "precision": seg.precision, "input_size": input_size,
                   "transport": cfg.input_transport,
                   "confidence": "off: " + no_confidence if no_confidence else "available"})
    values.update(input_values(cameras, now))
    values.update({"inference_failures": str(errors[0]), "last_error": errors[1],
                   "failed_sizes": failed_sizes})
    values.update(qos_values(qos))
    values.update(stage_values(stages))
    statuses = [node_status(name, health, active, str(seg.device), values)]
    if cfg.cameras:
        statuses += [camera_status(f"{node_name}: camera {c.key}", str(seg.device), c, now)
                     for c in cameras]
    return statuses
