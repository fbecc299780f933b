"""An rclpy node in a context of its own, spun in a background thread.

For code that talks to the segmentation node from the outside while doing its own work
on the main thread: the benchmarks' camera, and the test suite's client. Its own context
means it never touches (or is shut down with) the global one.
"""
from __future__ import annotations

import threading
import time
from typing import Sequence

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from ..compat import publisher_count

__all__ = ["Participant"]


class Participant:
    """``node`` in its own context; callbacks run on a background thread until ``close``."""

    def __init__(self, name: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self._executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, RuntimeError):
            pass   # shut down from close()

    def wait_matched(self, pubs: Sequence, subs: Sequence, timeout_s: float) -> None:
        """Until every publisher has a subscriber and every subscription a publisher."""
        deadline = time.monotonic() + timeout_s
        while any(p.get_subscription_count() == 0 for p in pubs) or any(
                publisher_count(self.node, s) == 0 for s in subs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the node's topics did not appear within {timeout_s:.0f} s")
            time.sleep(0.05)

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._spinner.join(timeout=2.0)
