"""The live path over ROS 2: ``play-bag`` and ``eval-bag --live``.

``play_bag`` publishes a bag's image topic as a camera would: the recorded messages,
unchanged (so header stamps stay the recorded ones), at the recorded rate times ``rate``.
``evaluate_live`` watches the same camera topic and the node's outputs: a frame's
end-to-end latency is the time from its arrival on the camera topic to the arrival of
its labels (same header stamp), both seen by this process's clock; a frame seen on the
camera topic whose labels never come is dropped. Ground truth comes from the bag, as in
the offline evaluation. It works the same with ``ros2 bag play`` as the player.

rclpy is imported inside the functions: the rest of the package runs without ROS.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .bags import COMPRESSED_IMAGE, IMAGE, BagError, BagReader, read_errors

__all__ = ["PlayOptions", "play_bag", "LiveOptions", "evaluate_live"]

log = logging.getLogger(__name__)


def _init_rclpy():
    """rclpy, initialised with the package's Fast DDS profile (large shared memory).

    The profile matters on the publishing side: a best-effort frame larger than Fast DDS's
    default shared-memory segment is otherwise lost (see ``mfaranet_ros.ros.qos``).
    """
    try:
        import rclpy
    except ImportError as exc:
        raise BagError(f"the live path needs rclpy (a ROS 2 install, or the PyPI wheels in "
                       f"requirements-ros-pypi.txt): {exc}") from None
    from mfaranet_ros.ros.qos import apply_fastdds_profile

    from rclpy.signals import SignalHandlerOptions

    apply_fastdds_profile()
    if not rclpy.ok():
        # Python's own SIGINT handling: Ctrl-C raises KeyboardInterrupt wherever the loop
        # is (rclpy's handler would shut the context down under a publishing loop).
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    return rclpy


def _shutdown(rclpy, node) -> None:
    node.destroy_node()
    rclpy.try_shutdown()   # Ctrl-C may have shut the context down already


def _interrupts():
    """What Ctrl-C raises in an rclpy loop: KeyboardInterrupt, or rclpy's own shutdown."""
    from rclpy.executors import ExternalShutdownException

    return (KeyboardInterrupt, ExternalShutdownException)


def _msg_class(msgtype: str):
    if msgtype == IMAGE:
        from sensor_msgs.msg import Image

        return Image
    if msgtype == COMPRESSED_IMAGE:
        from sensor_msgs.msg import CompressedImage

        return CompressedImage
    raise BagError(f"cannot publish {msgtype}: not an image type")


# --------------------------------------------------------------------------- play-bag

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


def _bag_messages(path, topic: Optional[str]):
    """(topic, msgtype, [(log_time_ns, cdr bytes)]) of a bag's image topic, in time order."""
    from .offline import EvalOptions, choose_image_topic

    with BagReader(path) as bag:
        topic = choose_image_topic(bag, EvalOptions(image_topic=topic))
        msgtype = bag.topics()[topic]
        reader = bag.reader
        conns = [c for c in reader.connections if c.topic == topic]
        out = []
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


def play_bag(path, options: Optional[PlayOptions] = None) -> Dict:
    """Publishes the bag's image topic in real time; returns counts and timing.

    Messages go out as recorded (serialized CDR, published raw), each at its recorded
    offset from the first one divided by ``rate``. Ctrl-C stops cleanly.
    """
    options = options or PlayOptions()
    if options.rate <= 0:
        raise ValueError(f"rate must be > 0, got {options.rate}")
    topic, msgtype, messages = _bag_messages(path, options.image_topic)
    out_topic = options.topic or topic
    rclpy = _init_rclpy()
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     durability=DurabilityPolicy.VOLATILE,
                     reliability=(ReliabilityPolicy.RELIABLE if options.reliability == "reliable"
                                  else ReliabilityPolicy.BEST_EFFORT))
    node = rclpy.create_node("mfaranet_play_bag")
    publisher = node.create_publisher(_msg_class(msgtype), out_topic, qos)
    published, interrupted = 0, False
    t_first = messages[0][0]
    span = messages[-1][0] - t_first
    period = span / (len(messages) - 1) if len(messages) > 1 else 1e8
    wall0 = time.monotonic()
    try:
        if options.wait_for_subscribers > 0:
            deadline = time.monotonic() + options.wait_timeout_s
            while publisher.get_subscription_count() < options.wait_for_subscribers:
                if time.monotonic() > deadline:
                    raise BagError(
                        f"{publisher.get_subscription_count()} of "
                        f"{options.wait_for_subscribers} subscribers on {out_topic!r} after "
                        f"{options.wait_timeout_s:.0f} s; is the node running?")
                time.sleep(0.05)
        if options.start_delay_s > 0:
            time.sleep(options.start_delay_s)
        log.info("playing %d frames of %s on %s at x%.2f%s", len(messages), topic, out_topic,
                 options.rate, " (loop)" if options.loop else "")
        wall0 = time.monotonic()
        cycle = 0
        while True:
            offset = cycle * (span + period)
            for t, data in messages:
                due = wall0 + (offset + t - t_first) / 1e9 / options.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                publisher.publish(data)
                published += 1
                if options.max_frames is not None and published >= options.max_frames:
                    break
            cycle += 1
            if not options.loop or (options.max_frames is not None
                                    and published >= options.max_frames):
                break
    except _interrupts():
        interrupted = True
    finally:
        wall = time.monotonic() - wall0
        _shutdown(rclpy, node)
    return {"topic": out_topic, "published": published, "wall_s": wall,
            "fps": published / wall if wall > 0 else 0.0, "interrupted": interrupted}


# ----------------------------------------------------------------------- eval --live

@dataclass
class LiveOptions:
    image_topic: Optional[str] = None        # the camera topic; None: the bag's camera
    label_topic: Optional[str] = None        # ground truth in the bag (by stamp)
    gt_folder: Optional[str] = None
    gt_match: str = "auto"
    gt_ids: str = "train"
    node: str = "/mfaranet"                  # the node's output namespace
    duration_s: Optional[float] = None       # stop after this long
    idle_s: float = 3.0                      # stop after this long without any frame
    max_frames: Optional[int] = None         # stop after this many outputs
    startup_timeout_s: float = 60.0          # give up if nothing arrives within this


def _stage_times(msg) -> Dict[str, float]:
    """``{stage: ms}`` from the node's DiagnosticArray latency message."""
    out: Dict[str, float] = {}
    for status in msg.status:
        for kv in status.values:
            if kv.key.endswith("_ms"):
                try:
                    out[kv.key[:-3]] = float(kv.value)
                except ValueError:
                    pass
    return out


class _Watcher:
    """Subscriptions and bookkeeping of one live evaluation."""

    def __init__(self, node, options: LiveOptions, run, truth, stamp_index) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CompressedImage, Image

        from mfaranet_ros.ros.conversions import image_to_rgb
        from mfaranet_ros.ros.qos import output_qos

        self.options, self.run, self.truth, self.stamp_index = options, run, truth, stamp_index
        self.node = node
        self.image_to_rgb = image_to_rgb
        self.arrivals: Dict[int, float] = {}       # input stamp -> arrival (monotonic s)
        self.seen: Dict[int, int] = {}             # input stamp -> times seen
        self.done: Dict[int, int] = {}             # input stamp -> outputs received
        self.device = ""
        self.overlays: Dict[int, np.ndarray] = {}
        self.orphans = 0
        self.first_input: Optional[float] = None
        self.last_event: Optional[float] = None
        self.last_output: Optional[float] = None
        self.outputs = 0
        ns = options.node.rstrip("/")
        self.labels_topic = f"{ns}/labels"
        qos = output_qos(10)
        self.input_sub = None
        self._input_types = (Image, CompressedImage)
        node.create_subscription(Image, self.labels_topic, self._on_labels, qos)
        node.create_subscription(Image, f"{ns}/overlay", self._on_overlay, qos)
        node.create_subscription(DiagnosticArray, f"{ns}/latency", self._on_latency, qos)

    def ensure_input_subscription(self) -> None:
        """Subscribes to the camera topic once its publisher is known (to match its QoS).

        It also waits until the node's labels publisher is discovered: a player that waits
        for its subscribers (``play-bag --wait-subscribers``) then cannot start the frames
        before the node's outputs can reach this process.
        """
        if self.input_sub is not None:
            return
        if self.node.count_publishers(self.labels_topic) < 1:
            return
        from rclpy.qos import QoSProfile

        from mfaranet_ros.ros.qos import choose_reliability, input_qos

        infos = self.node.get_publishers_info_by_topic(self.options.image_topic)
        if not infos:
            return
        msg_type = infos[0].topic_type
        cls = self._input_types[1] if msg_type.endswith("CompressedImage") else \
            self._input_types[0]
        reliability = choose_reliability("auto", [i.qos_profile.reliability for i in infos],
                                         None)
        qos: QoSProfile = input_qos(reliability, 10)
        self.input_sub = self.node.create_subscription(cls, self.options.image_topic,
                                                       self._on_input, qos)
        log.info("watching %s (%s, %s)", self.options.image_topic, msg_type,
                 reliability.name.lower())

    @staticmethod
    def _stamp(msg) -> int:
        return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)

    def _on_input(self, msg) -> None:
        now = time.monotonic()
        stamp = self._stamp(msg)
        self.arrivals[stamp] = now
        self.seen[stamp] = self.seen.get(stamp, 0) + 1
        if self.first_input is None:
            self.first_input = now
        self.last_event = now

    def _on_overlay(self, msg) -> None:
        # Kept until the frame's labels arrive (the strip shows overlays); a few at most.
        if self.run.strip.wants(self.outputs):
            self.overlays[self._stamp(msg)] = np.array(self.image_to_rgb(msg))
            while len(self.overlays) > 16:
                self.overlays.pop(next(iter(self.overlays)))

    def _on_latency(self, msg) -> None:
        # The node's own stage times for the frame; they usually arrive after its labels.
        if self._stamp(msg) not in self.arrivals:
            return
        for stage, ms in _stage_times(msg).items():
            self.run.latency.add(f"node_{stage}", ms)
        if msg.status and msg.status[0].hardware_id:
            self.device = msg.status[0].hardware_id

    def _on_labels(self, msg) -> None:
        now = time.monotonic()
        self.last_event = self.last_output = now
        stamp = self._stamp(msg)
        if stamp not in self.arrivals:
            self.orphans += 1            # labels for a frame this process never saw
            return
        self.done[stamp] = self.done.get(stamp, 0) + 1
        self.outputs += 1
        labels = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, : msg.width]
        timings = {"end_to_end": (now - self.arrivals[stamp]) * 1e3}
        index = self.stamp_index.get(stamp, -1)
        gt = self.truth.lookup(index, stamp) if self.truth is not None else None
        if gt is not None and gt.shape != labels.shape:
            raise BagError(f"ground truth {gt.shape} and the node's labels {labels.shape} "
                           f"differ in size for stamp {stamp}")
        self.run.add(self.outputs - 1, stamp, labels, gt, self.overlays.pop(stamp, None),
                     timings)


def _stamp_index(path, topic: str) -> Dict[int, int]:
    """Header stamp -> frame index on the bag's image topic (for index-matched PNGs)."""
    with BagReader(path) as bag:
        return {f.stamp_ns: f.index for f in bag.images(topic)}


def evaluate_live(bag_path, out_dir, options: Optional[LiveOptions] = None, *,
                  metadata=None) -> Dict:
    """Watches a running node while the bag is played; writes and returns the report.

    Start it before the player. It stops ``idle_s`` after the last frame, after
    ``duration_s``, after ``max_frames`` outputs, or on Ctrl-C (report marked interrupted).
    """
    from mfaranet_ros.model import cityscapes_metadata

    from .groundtruth import FolderGroundTruth, TopicGroundTruth
    from .offline import FrameAccumulator
    from .report import write_report

    options = options or LiveOptions()
    meta = metadata or cityscapes_metadata(source="class table of the evaluation")
    truth = None
    stamp_index: Dict[int, int] = {}
    with BagReader(bag_path) as bag:
        from .offline import EvalOptions, choose_image_topic

        options = replace(options, image_topic=choose_image_topic(
            bag, EvalOptions(image_topic=options.image_topic, label_topic=options.label_topic)))
        if options.label_topic:
            truth = TopicGroundTruth(bag, options.label_topic)
    if options.gt_folder:
        truth = FolderGroundTruth(options.gt_folder, options.gt_match, options.gt_ids)
        if truth.match == "index":
            stamp_index = _stamp_index(bag_path, options.image_topic)
    run = FrameAccumulator(meta.class_names, meta.palette, getattr(meta, "ignore_index", 255))

    rclpy = _init_rclpy()
    node = rclpy.create_node("mfaranet_eval_live")
    watcher = _Watcher(node, options, run, truth, stamp_index)
    status, detail = "complete", ""
    t0 = time.monotonic()
    try:
        while True:
            watcher.ensure_input_subscription()
            rclpy.spin_once(node, timeout_sec=0.05)
            now = time.monotonic()
            if watcher.first_input is None:
                if now - t0 > options.startup_timeout_s:
                    status = "failed"
                    detail = (f"no frame on {options.image_topic!r} within "
                              f"{options.startup_timeout_s:.0f} s; is the player running?")
                    break
                continue
            if options.duration_s is not None and now - watcher.first_input > options.duration_s:
                detail = f"stopped after --duration {options.duration_s:g} s."
                break
            if options.max_frames is not None and watcher.outputs >= options.max_frames:
                detail = f"stopped after {watcher.outputs} frames (--max-frames)."
                break
            if now - watcher.last_event > options.idle_s:
                detail = f"no frame for {options.idle_s:g} s: the bag has ended."
                break
    except _interrupts():
        status, detail = "interrupted", "stopped by Ctrl-C."
    finally:
        _shutdown(rclpy, node)

    sent = sum(watcher.seen.values())
    segmented = sum(min(watcher.done.get(s, 0), n) for s, n in watcher.seen.items())
    first, last = watcher.first_input, watcher.last_output
    span = (last - first) if (first is not None and last is not None) else 0.0
    live = {
        "node": options.node,
        "frames_sent": sent,
        "frames_segmented": segmented,
        "dropped": sent - segmented,
        "drop_rate": (sent - segmented) / sent if sent else 0.0,
        "outputs_without_seen_input": watcher.orphans,
        "output_fps": segmented / span if span > 0 else 0.0,
        "duration_s": span,
    }
    report = {
        "tool": "mfaranet eval-bag --live",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "status_detail": detail,
        "bag": {"path": str(bag_path), "image_topic": options.image_topic,
                "image_type": "live topic",
                "ground_truth": truth.description if truth is not None else "none"},
        "model": {"weights": "", "source": f"the running node {options.node}",
                  "backend": "", "device": watcher.device, "input_size": None,
                  "num_classes": len(meta.class_names), "class_names": list(meta.class_names)},
        "frames": {"processed": segmented, "with_ground_truth": run.with_gt,
                   "without_ground_truth": segmented - run.with_gt},
        "accuracy": run.accuracy(),
        "latency_ms": run.latency.summary(),
        "throughput": {"output_fps": live["output_fps"]},
        "live": live,
        "outputs": {},
        "per_frame": run.per_frame,
    }
    write_report(report, Path(out_dir), latency_samples=run.latency.samples,
                 palette=meta.palette, strip=run.strip, strip_caption="overlay | ground truth")
    if status == "failed":
        raise BagError(detail)
    return report
