"""``play-bag``: a bag's image topic published as a camera would publish it.

The recorded messages go out unchanged (serialized CDR, published raw, so header stamps
stay the recorded ones), each at its recorded offset from the first one divided by
``rate``. The bag is read, and its topic checked, before rclpy starts.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ...evaluation.bags import BagError, BagReader, read_errors
from ...evaluation.inputs import choose_image_topic
from .runtime import image_message_class, init_rclpy, interrupts, shutdown

__all__ = ["PlayOptions", "play_bag", "read_image_messages"]

log = logging.getLogger(__name__)


@dataclass
class PlayOptions:
    image_topic: Optional[str] = None     # topic in the bag; None: its only image topic
    topic: Optional[str] = None           # topic to publish on; None: the same name
    rate: float = 1.0                     # speed factor over the recorded rate
    loop: bool = False
    wait_for_subscribers: int = 0         # wait until this many subscriptions match
    wait_timeout_s: float = 30.0
    start_delay_s: float = 0.0
    reliability: str = "reliable"         # reliable | best_effort
    max_frames: Optional[int] = None      # stop after publishing this many (all loops)


def read_image_messages(path, topic: Optional[str]) -> Tuple[str, str, List[Tuple[int, bytes]]]:
    """``(topic, msgtype, [(log_time_ns, CDR bytes)])`` of a bag's image topic, in order."""
    with BagReader(path) as bag:
        topic = choose_image_topic(bag, topic)
        msgtype = bag.topics()[topic]
        reader = bag.reader
        conns = [c for c in reader.connections if c.topic == topic]
        out: List[Tuple[int, bytes]] = []
        try:
            for conn, t, raw in reader.messages(connections=conns):
                # ROS 1 bags store ROS 1 serialization; DDS wants CDR.
                data = raw if reader.is2 else reader.typestore.ros1_to_cdr(raw, conn.msgtype)
                out.append((int(t), bytes(data)))
        except read_errors() as exc:
            raise BagError(f"bag {str(path)!r} is damaged: reading {topic!r} failed "
                           f"after {len(out)} messages ({type(exc).__name__}: {exc})") from None
    if not out:
        raise BagError(f"topic {topic!r} of {str(path)!r} holds no messages")
    return topic, msgtype, out


def _publisher(node, msgtype: str, topic: str, reliability: str):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     durability=DurabilityPolicy.VOLATILE,
                     reliability=(ReliabilityPolicy.RELIABLE if reliability == "reliable"
                                  else ReliabilityPolicy.BEST_EFFORT))
    return node.create_publisher(image_message_class(msgtype), topic, qos)


def _wait_for_subscribers(publisher, topic: str, options: PlayOptions) -> None:
    if options.wait_for_subscribers <= 0:
        return
    deadline = time.monotonic() + options.wait_timeout_s
    while publisher.get_subscription_count() < options.wait_for_subscribers:
        if time.monotonic() > deadline:
            raise BagError(
                f"{publisher.get_subscription_count()} of {options.wait_for_subscribers} "
                f"subscribers on {topic!r} after {options.wait_timeout_s:.0f} s; is the node "
                f"running?")
        time.sleep(0.05)


@dataclass
class _Sent:
    """Messages published so far (kept when Ctrl-C ends the schedule)."""

    count: int = 0


def _publish_on_schedule(publisher, messages: List[Tuple[int, bytes]], options: PlayOptions,
                         wall0: float, sent: _Sent) -> None:
    """Publishes every message at its recorded time / ``rate`` after ``wall0``; a loop
    starts over one recorded period after the last message."""
    t_first = messages[0][0]
    span = messages[-1][0] - t_first
    period = span / (len(messages) - 1) if len(messages) > 1 else 1e8
    cycle = 0
    while True:
        offset = cycle * (span + period)
        for t, data in messages:
            delay = wall0 + (offset + t - t_first) / 1e9 / options.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            publisher.publish(data)
            sent.count += 1
            if options.max_frames is not None and sent.count >= options.max_frames:
                return
        cycle += 1
        if not options.loop:
            return


def play_bag(path, options: Optional[PlayOptions] = None) -> Dict:
    """Publishes the bag's image topic in real time; returns counts and timing.

    Ctrl-C stops cleanly (``interrupted`` in the result).
    """
    options = options or PlayOptions()
    if options.rate <= 0:
        raise ValueError(f"rate must be > 0, got {options.rate}")
    topic, msgtype, messages = read_image_messages(path, options.image_topic)
    out_topic = options.topic or topic
    rclpy = init_rclpy()
    node = rclpy.create_node("mfaranet_play_bag")
    publisher = _publisher(node, msgtype, out_topic, options.reliability)
    sent, interrupted = _Sent(), False
    wall0 = time.monotonic()
    try:
        _wait_for_subscribers(publisher, out_topic, options)
        if options.start_delay_s > 0:
            time.sleep(options.start_delay_s)
        log.info("playing %d frames of %s on %s at x%.2f%s", len(messages), topic, out_topic,
                 options.rate, " (loop)" if options.loop else "")
        wall0 = time.monotonic()
        _publish_on_schedule(publisher, messages, options, wall0, sent)
    except interrupts():
        interrupted = True
    finally:
        wall = time.monotonic() - wall0
        shutdown(rclpy, node)
    return {"topic": out_topic, "published": sent.count, "wall_s": wall,
            "fps": sent.count / wall if wall > 0 else 0.0, "interrupted": interrupted}
