"""The middleware's QoS events on the node's inputs and outputs: counted, logged (throttled).

An input's event says a camera offers QoS the subscription cannot take, or that messages
were lost; an output's, that a subscriber requests QoS the output does not offer. The
counts go to ``/diagnostics`` (:func:`~.stats.assess` turns recent ones into a WARN).
"""
from __future__ import annotations

import threading
import time
from typing import Any

from rclpy.qos import QoSPolicyKind

from .stats import QosEventCounters

__all__ = ["QosEventMonitor"]

_WHAT = {"incompatible_requested": "a publisher offers QoS our subscription cannot accept",
         "incompatible_offered": "a subscriber requests QoS this output does not offer",
         "messages_lost": "the middleware lost messages"}


class QosEventMonitor:
    """Counts QoS events into :attr:`counters` under ``lock`` (the worker's).

    ``reliability``: the ``qos_reliability`` parameter; with ``auto`` a best-effort camera
    appearing while the input is reliable is no fault (the input re-adapts within half a
    second), so that event is not counted.
    """

    def __init__(self, logger: Any, lock: threading.Lock, reliability: str = "auto"):
        self._log, self._lock = logger, lock
        self.reliability = reliability
        self.counters = QosEventCounters()

    def on_incompatible_subscriber(self, event: Any, topic: str) -> None:
        self.record("incompatible_offered", event, topic)

    def record(self, kind: str, event: Any, topic: str) -> None:
        change = int(getattr(event, "total_count_change", 1)) or 1
        policy = getattr(event, "last_policy_kind", None)
        policy_name = QoSPolicyKind(policy).name if policy is not None else ""
        if (kind == "incompatible_requested" and self.reliability == "auto"
                and policy_name == "RELIABILITY"):
            return
        with self._lock:
            ev = self.counters
            setattr(ev, kind, getattr(ev, kind) + change)
            if policy_name:
                ev.last_policy = policy_name
            ev.last_topic = topic
            ev.last_event = time.monotonic()
        self._log.warning(f"QoS event on {topic}: {_WHAT[kind]} (policy {policy_name or '-'}, "
                          f"{change} new)", throttle_duration_sec=5.0)
