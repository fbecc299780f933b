"""``eval-bag --live``: a running node watched while a bag is played.

The evaluator subscribes to the camera topic and to the node's outputs. A frame's
end-to-end latency is the time from its arrival on the camera topic to the arrival of
its labels (same header stamp), both seen by this process's clock; a frame seen on the
camera topic whose labels never come is dropped. Ground truth comes from the bag, as in
the offline evaluation, and the report is the offline one's with a ``live`` section.
It works the same with ``play-bag`` or ``ros2 bag play`` as the player.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ...encodings import image_to_rgb
from ...evaluation.accumulator import FrameAccumulator
from ...evaluation.bags import BagError, BagReader
from ...evaluation.inputs import check_bag_inputs, open_ground_truth
from ...evaluation.report import bag_section, build_report, write_report
from .runtime import init_rclpy, interrupts, shutdown

__all__ = ["LiveOptions", "evaluate_live", "prepare_live"]

log = logging.getLogger(__name__)


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
                    log.debug("latency value %r of %s is not a number", kv.value, kv.key)
    return out


class _Watcher:
    """Subscriptions and bookkeeping of one live evaluation."""

    def __init__(self, node, options: LiveOptions, run, truth, stamp_index) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CompressedImage, Image

        from ..qos import output_qos

        self.options, self.run, self.truth, self.stamp_index = options, run, truth, stamp_index
        self.node = node
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

        from ..qos import choose_reliability, input_qos

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
            self.overlays[self._stamp(msg)] = np.array(image_to_rgb(msg))
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


@dataclass
class _Truth:
    """The ground truth of a live run, and the stamps -> indices an index-matched folder
    needs."""

    truth: object = None
    stamp_index: Optional[Dict[int, int]] = None


def prepare_live(bag_path, options: LiveOptions) -> Tuple[LiveOptions, _Truth]:
    """Checks the bag (cheap, before anything starts) and reads its ground truth.

    Returns the options with the camera topic filled in.
    """
    inputs = check_bag_inputs(bag_path, options.image_topic, options.label_topic,
                              options.gt_folder, options.gt_match, options.gt_ids)
    options = replace(options, image_topic=inputs.image_topic)
    with BagReader(bag_path) as bag:
        truth = open_ground_truth(bag, options.label_topic, options.gt_folder,
                                  options.gt_match, options.gt_ids)
    index = None
    if getattr(truth, "match", None) == "index":
        index = _stamp_index(bag_path, options.image_topic)
    return options, _Truth(truth, index or {})


def _stop_reason(watcher: _Watcher, options: LiveOptions, now: float,
                 t0: float) -> Optional[Tuple[str, str]]:
    """``(status, detail)`` once the watch should end, else None."""
    if watcher.first_input is None:
        if now - t0 > options.startup_timeout_s:
            return "failed", (f"no frame on {options.image_topic!r} within "
                              f"{options.startup_timeout_s:.0f} s; is the player running?")
        return None
    if options.duration_s is not None and now - watcher.first_input > options.duration_s:
        return "complete", f"stopped after --duration {options.duration_s:g} s."
    if options.max_frames is not None and watcher.outputs >= options.max_frames:
        return "complete", f"stopped after {watcher.outputs} frames (--max-frames)."
    if now - watcher.last_event > options.idle_s:
        return "complete", f"no frame for {options.idle_s:g} s: the bag has ended."
    return None


def _watch(rclpy, node, watcher: _Watcher, options: LiveOptions) -> Tuple[str, str]:
    """Spins until a stop reason or Ctrl-C; returns ``(status, detail)``."""
    t0 = time.monotonic()
    try:
        while True:
            watcher.ensure_input_subscription()
            rclpy.spin_once(node, timeout_sec=0.05)
            reason = _stop_reason(watcher, options, time.monotonic(), t0)
            if reason is not None:
                return reason
    except interrupts():
        return "interrupted", "stopped by Ctrl-C."


def _live_counts(watcher: _Watcher, options: LiveOptions) -> Dict:
    """The report's ``live`` section: frames sent, segmented, dropped; the output rate."""
    sent = sum(watcher.seen.values())
    segmented = sum(min(watcher.done.get(s, 0), n) for s, n in watcher.seen.items())
    first, last = watcher.first_input, watcher.last_output
    span = (last - first) if (first is not None and last is not None) else 0.0
    return {
        "node": options.node,
        "frames_sent": sent,
        "frames_segmented": segmented,
        "dropped": sent - segmented,
        "drop_rate": (sent - segmented) / sent if sent else 0.0,
        "outputs_without_seen_input": watcher.orphans,
        "output_fps": segmented / span if span > 0 else 0.0,
        "duration_s": span,
    }


def evaluate_live(bag_path, out_dir, options: Optional[LiveOptions] = None, *,
                  metadata=None) -> Dict:
    """Watches a running node while the bag is played; writes and returns the report.

    Start it before the player. It stops ``idle_s`` after the last frame, after
    ``duration_s``, after ``max_frames`` outputs, or on Ctrl-C (report marked interrupted).
    ``metadata``: the node's class table (default: Cityscapes').
    """
    from mfaranet_ros.model import cityscapes_metadata

    options, truth = prepare_live(bag_path, options or LiveOptions())
    meta = metadata or cityscapes_metadata(source="class table of the evaluation")
    run = FrameAccumulator.for_metadata(meta)
    rclpy = init_rclpy()
    node = rclpy.create_node("mfaranet_eval_live")
    watcher = _Watcher(node, options, run, truth.truth, truth.stamp_index)
    try:
        status, detail = _watch(rclpy, node, watcher, options)
    finally:
        shutdown(rclpy, node)
    live = _live_counts(watcher, options)
    model = {"weights": "", "source": f"the running node {options.node}", "backend": "",
             "device": watcher.device, "input_size": None,
             "num_classes": len(meta.class_names), "class_names": list(meta.class_names)}
    report = build_report(
        run, tool="mfaranet eval-bag --live", status=status, detail=detail,
        bag=bag_section(bag_path, options.image_topic, "live topic", truth.truth),
        model=model, processed=live["frames_segmented"],
        throughput={"output_fps": live["output_fps"]}, live=live)
    write_report(report, Path(out_dir), run)
    if status == "failed":
        raise BagError(detail)
    return report
