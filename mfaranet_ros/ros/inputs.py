"""The camera inputs of a segmentation node: each camera's subscription, with its QoS
following the camera's publishers, and its camera_info beside it.

:class:`CameraInput` is one camera's state (subscription, outputs, counters);
:class:`Inputs` subscribes, re-adapts and unsubscribes all of them on a node. The frames
themselves go to the callback it is given (the node's worker takes them from there).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, List, Optional, Tuple

from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from . import camera_info as info_tools
from . import qos as qos_tools
from .compat import SubscriptionEventCallbacks
from .stats import InputCounters, StageStats

__all__ = ["CameraInput", "Inputs", "count_text"]

Size = Optional[Tuple[int, int]]


def count_text(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


class CameraInput:
    """One camera: its subscription, its outputs, its camera_info, its counters."""

    def __init__(self, key: str, input_topic: str, prefix: str):
        self.key = key
        self.input_topic = input_topic
        self.prefix = prefix
        self.resolved_topic = ""
        self.subscription = None
        self.reliability: Optional[ReliabilityPolicy] = None
        self.publisher_count = 0
        self.outputs: Any = None        # its CameraOutputs, while configured
        self.info_subscription = None   # the camera's camera_info, beside its image
        self.camera_info = None         # the newest one received
        self.counters = InputCounters()
        self.stages = StageStats()
        self.last_shape: Size = None  # network (H, W) of its latest frame


class Inputs:
    """Subscribes a node's cameras: reliability from their publishers (``qos_reliability``
    ``auto`` follows them, as rosbag2's recorder does), re-adapted every half second.

    ``on_image(camera, msg)`` gets every frame; ``on_qos_event(kind, event, topic)`` every
    QoS event of an input.
    """

    def __init__(self, node: Node, cameras: List[CameraInput], *, compressed: bool,
                 reliability: str, depth: int, on_image: Callable[[CameraInput, Any], None],
                 on_qos_event: Callable[[str, Any, str], None],
                 own_topics: Iterable[str] = ()) -> None:
        self.node, self.cameras = node, cameras
        self._own_topics = frozenset(own_topics)
        self._compressed, self._reliability, self._depth = compressed, reliability, depth
        self._on_image, self._on_qos_event = on_image, on_qos_event
        self._timer = None

    def subscribe(self, discovery_wait_s: float) -> None:
        """``auto`` first waits (at most ``discovery_wait_s``) for every camera's publishers
        to be discovered: a reliable camera is then subscribed reliable before its first
        frame, which a best-effort subscription would lose when it is larger than the
        publisher's shared-memory segment. A camera with no publisher by then gets best
        effort (it matches any camera) and, like every input, is re-adapted when its
        publishers change."""
        if self._reliability == "auto":
            self._wait_for_publishers(discovery_wait_s)
        for cam in self.cameras:
            if cam.resolved_topic in self._own_topics:
                self.node.get_logger().error(
                    f"{cam.resolved_topic} is one of this node's own outputs: not subscribed "
                    f"(remap the camera's image topic)")
                continue
            self.adapt(cam)
            topic = info_tools.camera_info_topic(cam.resolved_topic)
            if topic in self._own_topics:
                # only with an image remapped under the node's own name (~/image): the
                # outputs are private (~/...), the inputs are not
                self.node.get_logger().warning(
                    f"{topic} is both {cam.resolved_topic}'s camera_info and this node's "
                    f"camera_info output: that camera runs without camera_info (remap its "
                    f"image topic out of the node's private namespace)")
                continue
            cam.info_subscription = self.node.create_subscription(
                CameraInfo, topic, lambda msg, c=cam: setattr(c, "camera_info", msg),
                info_tools.camera_info_qos())
        self._timer = self.node.create_timer(0.5, self.adapt_all)

    def describe(self) -> str:
        return ", ".join(f"{c.resolved_topic} ({qos_tools.reliability_name(c.reliability)}, "
                         f"{count_text(c.publisher_count, 'publisher')})" for c in self.cameras)

    def _wait_for_publishers(self, timeout: float) -> None:
        node = self.node

        def missing():
            return [c.resolved_topic for c in self.cameras
                    if not node.count_publishers(c.resolved_topic)]
        waiting = missing()
        if not waiting:
            return
        node.get_logger().info(f"waiting up to {timeout:.1f} s for publishers on "
                               f"{', '.join(waiting)} (qos_reliability auto)")
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline and node.context.ok():
            time.sleep(0.05)
            waiting = missing()
        if waiting:
            node.get_logger().info(
                f"no publisher yet on {', '.join(waiting)}: subscribing best effort (it "
                f"matches any camera) and adapting when one appears")

    def adapt_all(self) -> None:
        for cam in self.cameras:
            if cam.resolved_topic not in self._own_topics:
                self.adapt(cam)

    def adapt(self, cam: CameraInput) -> None:
        """(Re)create the camera subscription with the reliability its publishers need."""
        node = self.node
        infos = node.get_publishers_info_by_topic(cam.resolved_topic)
        cam.publisher_count = len(infos)
        want = qos_tools.choose_reliability(
            self._reliability, [i.qos_profile.reliability for i in infos], cam.reliability)
        if cam.subscription is not None and want == cam.reliability:
            return
        if cam.subscription is not None:
            node.destroy_subscription(cam.subscription)
            node.get_logger().info(
                f"{cam.resolved_topic}: input QoS {qos_tools.reliability_name(cam.reliability)}"
                f" -> {qos_tools.reliability_name(want)} "
                f"({count_text(len(infos), 'publisher')})")
        topic = cam.resolved_topic
        callbacks = SubscriptionEventCallbacks(
            incompatible_qos=lambda e, t=topic: self._on_qos_event("incompatible_requested",
                                                                   e, t),
            message_lost=lambda e, t=topic: self._on_qos_event("messages_lost", e, t))
        cam.subscription = node.create_subscription(
            CompressedImage if self._compressed else Image, cam.input_topic,
            lambda msg, c=cam: self._on_image(c, msg),
            qos_tools.input_qos(want, self._depth), event_callbacks=callbacks)
        cam.reliability = want

    def unsubscribe(self) -> None:
        """Every subscription and the re-adapting timer gone (the outputs stay)."""
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None
        for cam in self.cameras:
            if cam.subscription is not None:
                self.node.destroy_subscription(cam.subscription)
                cam.subscription, cam.reliability, cam.publisher_count = None, None, 0
            if cam.info_subscription is not None:
                self.node.destroy_subscription(cam.info_subscription)
                cam.info_subscription, cam.camera_info = None, None
