"""``segmentation_node``: camera images in; labels, color, overlay and latency out.

A thin adapter: message -> :mod:`conversions` -> Segmenter -> :mod:`conversions` ->
message. The executor thread only stores the newest frame of each camera; one worker
thread decodes, runs the model (all cameras with a new frame as one batch) and publishes.
A frame replaced before the worker took it is counted as dropped, so latency stays
bounded at any camera rate.

Per-frame latency goes out on ``~/latency`` (or ``<camera>/latency``) as a
``diagnostic_msgs/DiagnosticArray``: its header is the input frame's header, and its one
status carries the stage times in milliseconds as key/values (``decode_ms``,
``preprocess_ms``, ``inference_ms``, ``postprocess_ms``, ``publish_ms``,
``end_to_end_ms``, ``queue_ms``, ``batch_size``, ``outputs``).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSPolicyKind, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from . import diagnostics
from . import qos as qos_tools
from .conversions import ImageFormatError, compressed_to_rgb, image_to_rgb, serialize_image
from .parameters import PARAMETERS, NodeConfig, ParamSpec, resolve_weights, topic_layout, \
    validate_parameter
from .stats import InputCounters, QosEventCounters, StageStats, assess

__all__ = ["SegmentationNode", "StartupError", "main"]

NODE_NAME = "mfaranet"
#: consecutive failed inference cycles after which /diagnostics reports ERROR
FAILURES_FOR_ERROR = 3

_PARAM_TYPES = {
    "string": ParameterType.PARAMETER_STRING,
    "bool": ParameterType.PARAMETER_BOOL,
    "integer": ParameterType.PARAMETER_INTEGER,
    "double": ParameterType.PARAMETER_DOUBLE,
    "integer_array": ParameterType.PARAMETER_INTEGER_ARRAY,
    "string_array": ParameterType.PARAMETER_STRING_ARRAY,
}
_LIST_TYPES = {"integer_array": Parameter.Type.INTEGER_ARRAY,
               "string_array": Parameter.Type.STRING_ARRAY}


class StartupError(RuntimeError):
    """The node cannot start (invalid parameters, unusable checkpoint); the text says why."""


class _StartupInterrupted(Exception):
    """A signal shut the context down while the model was loading."""


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(name=spec.name, type=_PARAM_TYPES[spec.kind],
                            description=spec.description, read_only=spec.read_only)
    constraints = [spec.constraints] if spec.constraints else []
    if spec.choices:
        constraints.append("one of: " + ", ".join(spec.choices))
    if spec.read_only:
        constraints.append("read-only: a change needs a restart")
    d.additional_constraints = "; ".join(constraints)
    if spec.int_range:
        d.integer_range = [IntegerRange(from_value=spec.int_range[0],
                                        to_value=spec.int_range[1], step=1)]
    if spec.float_range:
        d.floating_point_range = [FloatingPointRange(from_value=spec.float_range[0],
                                                     to_value=spec.float_range[1], step=0.0)]
    return d


class CameraInput:
    """One camera: its subscription, its four publishers, its newest pending frame."""

    def __init__(self, key: str, input_topic: str, prefix: str):
        self.key = key
        self.input_topic = input_topic
        self.prefix = prefix
        self.resolved_topic = ""
        self.subscription = None
        self.reliability: Optional[ReliabilityPolicy] = None
        self.publisher_count = 0
        self.pubs: Dict[str, Any] = {}
        self.counters = InputCounters()
        self.stages = StageStats()
        self.pending: Optional[Tuple[Any, float]] = None


class SegmentationNode(Node):
    """The MFARANet segmentation node (see the module docstring)."""

    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.cfg = self._declare_and_read_parameters()
        self._alpha = self.cfg.overlay_alpha
        self._enabled = {"labels": self.cfg.publish_labels, "color": self.cfg.publish_color,
                         "overlay": self.cfg.publish_overlay}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.segmenter = self._load_segmenter()  # before any subscription exists

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self.stages = StageStats()
        self.qos_events = QosEventCounters()
        self._failures = 0
        self._last_error = ""

        self._is_compressed = self.cfg.input_transport == "compressed"
        self.cameras: List[CameraInput] = [
            CameraInput(*t) for t in topic_layout(self.cfg.cameras, self.cfg.input_transport)]
        out_qos = qos_tools.output_qos(self.cfg.qos_depth)
        for cam in self.cameras:
            for name in ("labels", "color", "overlay"):
                cam.pubs[name] = self._create_output(Image, cam.prefix + name, out_qos)
            cam.pubs["latency"] = self._create_output(DiagnosticArray, cam.prefix + "latency",
                                                      out_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self._worker = threading.Thread(target=self._work, name="mfaranet-inference",
                                        daemon=True)
        self._worker.start()
        for cam in self.cameras:
            cam.resolved_topic = self.resolve_topic_name(cam.input_topic)
            self._adapt_input(cam)
        self._qos_timer = self.create_timer(0.5, self._adapt_all_inputs)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        topics = ", ".join(c.resolved_topic for c in self.cameras)
        self.get_logger().info(f"subscribed to {topics}; publishing labels, color, overlay "
                               f"and latency")

    # ------------------------------------------------------------------ parameters
    def _declare_and_read_parameters(self) -> NodeConfig:
        values: Dict[str, Any] = {}
        for spec in PARAMETERS:
            if spec.kind in _LIST_TYPES:
                # An empty list has no ROS type (and YAML "[]" arrives untyped), so lists
                # are declared typed without a default: unset means empty.
                self.declare_parameter(spec.name, _LIST_TYPES[spec.kind], _descriptor(spec))
                try:
                    values[spec.name] = list(self.get_parameter(spec.name).value)
                except ParameterUninitializedException:
                    values[spec.name] = None
            else:
                values[spec.name] = self.declare_parameter(
                    spec.name, spec.default, _descriptor(spec)).value
        try:
            return NodeConfig.from_values(values)
        except ValueError as exc:
            raise StartupError(f"invalid parameters: {exc}") from None

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        for p in params:
            reason = validate_parameter(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for p in params:
            if p.name == "overlay_alpha":
                self._alpha = float(p.value)
            elif p.name.startswith("publish_"):
                self._enabled[p.name[len("publish_"):]] = bool(p.value)
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------------- model
    def _load_segmenter(self):
        from mfaranet_ros.inference import BackendUnavailable, Segmenter  # heavy: torch
        from mfaranet_ros.model import CheckpointError

        cfg = self.cfg
        path = resolve_weights(cfg.weights)
        log = self.get_logger()
        log.info(f"loading {path} (backend {cfg.backend}, precision {cfg.precision})")
        try:
            seg = Segmenter.from_checkpoint(
                path, backend=cfg.backend, device=cfg.device or None, precision=cfg.precision,
                input_size=tuple(cfg.input_size) if cfg.input_size else None,
                pruned=cfg.pruned, cache_dir=cfg.engine_cache_dir or None)
        except CheckpointError as exc:
            raise StartupError(f"cannot load checkpoint {path!r}: {exc}") from None
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise StartupError(f"cannot start the {cfg.backend} backend with {path!r}: "
                               f"{type(exc).__name__}: {exc}") from None
        warm_shape = tuple(seg.input_size) if seg.input_size else (512, 1024)
        # every batch size a cycle can have (1..number of cameras), so no artifact is
        # built or first allocated while frames are waiting
        try:
            warm_s = sum(seg.warmup(frame_shape=warm_shape, batch=b)
                         for b in range(1, max(1, len(cfg.cameras)) + 1))
        except BackendUnavailable as exc:  # e.g. no int8 artifact for this input size
            raise StartupError(f"cannot start the {cfg.backend} backend with {path!r}: "
                               f"{exc}") from None
        if not self.context.ok():  # SIGTERM arrived during the load (rclpy shut down)
            raise _StartupInterrupted()
        self._input_size_text = ("x".join(str(v) for v in seg.input_size)
                                 if seg.input_size else "full resolution")
        log.info(f"model ready: backend {seg.backend_name}, device {seg.device}, input size "
                 f"{self._input_size_text}, {len(seg.metadata.class_names)} classes, "
                 f"warm-up {warm_s * 1000:.0f} ms")
        return seg

    # ---------------------------------------------------------------- QoS, events
    def _create_output(self, msg_type, topic: str, qos):
        def on_incompatible(event, name=self.resolve_topic_name(topic)):
            self._qos_event("incompatible_offered", event, name)
        return self.create_publisher(
            msg_type, topic, qos,
            event_callbacks=PublisherEventCallbacks(incompatible_qos=on_incompatible))

    def _qos_event(self, kind: str, event, topic: str) -> None:
        change = int(getattr(event, "total_count_change", 1)) or 1
        policy = getattr(event, "last_policy_kind", None)
        policy_name = QoSPolicyKind(policy).name if policy is not None else ""
        if (kind == "incompatible_requested" and self.cfg.qos_reliability == "auto"
                and policy_name == "RELIABILITY"):
            # auto mode: a best-effort camera appeared while we were reliable; the QoS
            # timer re-adapts within half a second, which is no fault to report.
            return
        with self._lock:
            ev = self.qos_events
            setattr(ev, kind, getattr(ev, kind) + change)
            if policy_name:
                ev.last_policy = policy_name
            ev.last_topic = topic
            ev.last_event = time.monotonic()
        what = {"incompatible_requested": "a publisher offers QoS our subscription cannot "
                                          "accept",
                "incompatible_offered": "a subscriber requests QoS this output does not offer",
                "messages_lost": "the middleware lost messages"}[kind]
        self.get_logger().warning(
            f"QoS event on {topic}: {what} (policy {policy_name or '-'}, {change} new)",
            throttle_duration_sec=5.0)

    def _adapt_all_inputs(self) -> None:
        for cam in self.cameras:
            self._adapt_input(cam)

    def _adapt_input(self, cam: CameraInput) -> None:
        """(Re)create the camera subscription with the reliability its publishers need."""
        infos = self.get_publishers_info_by_topic(cam.resolved_topic)
        cam.publisher_count = len(infos)
        want = qos_tools.choose_reliability(
            self.cfg.qos_reliability, [i.qos_profile.reliability for i in infos],
            cam.reliability)
        if cam.subscription is not None and want == cam.reliability:
            return
        if cam.subscription is not None:
            self.destroy_subscription(cam.subscription)
            self.get_logger().info(
                f"{cam.resolved_topic}: input QoS {qos_tools.reliability_name(cam.reliability)}"
                f" -> {qos_tools.reliability_name(want)} ({len(infos)} publishers)")
        topic = cam.resolved_topic
        callbacks = SubscriptionEventCallbacks(
            incompatible_qos=lambda e, t=topic: self._qos_event("incompatible_requested", e, t),
            message_lost=lambda e, t=topic: self._qos_event("messages_lost", e, t))
        cam.subscription = self.create_subscription(
            CompressedImage if self._is_compressed else Image, cam.input_topic,
            lambda msg, c=cam: self._on_image(c, msg),
            qos_tools.input_qos(want, self.cfg.qos_depth), event_callbacks=callbacks)
        cam.reliability = want

    # ------------------------------------------------------------ executor side
    def _on_image(self, cam: CameraInput, msg) -> None:
        now = time.perf_counter()
        with self._lock:
            cam.counters.received += 1
            if cam.pending is not None:
                cam.counters.dropped += 1  # newest frame wins
            cam.pending = (msg, now)
            self._wake.notify()

    # -------------------------------------------------------------- worker side
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._stop and not any(c.pending for c in self.cameras):
                    self._wake.wait(0.5)
                if self._stop:
                    return
                batch = [(c, c.pending[0], c.pending[1]) for c in self.cameras if c.pending]
                for c in self.cameras:
                    c.pending = None
            try:
                self._process(batch)
            except Exception as exc:  # noqa: BLE001 - the worker must survive and report
                if not rclpy.ok(context=self.context) or self._stop:
                    return
                self._fail(f"{type(exc).__name__}: {exc}")

    def _reject(self, cam: CameraInput, reason: str) -> None:
        with self._lock:
            cam.counters.rejected += 1
            cam.counters.last_reject_reason = reason
        where = cam.resolved_topic or cam.input_topic
        self.get_logger().warning(f"rejected a frame on {where}: {reason}",
                                  throttle_duration_sec=2.0)

    def _fail(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = reason
        self.get_logger().error(f"inference failed: {reason}", throttle_duration_sec=2.0)

    def _wanted(self, cam: CameraInput) -> Dict[str, bool]:
        return {name: self._enabled[name] and cam.pubs[name].get_subscription_count() > 0
                for name in ("labels", "color", "overlay")}

    def _process(self, batch) -> None:
        t_start = time.perf_counter()
        frames, items = [], []
        for cam, msg, t_recv in batch:
            t0 = time.perf_counter()
            try:
                frame = compressed_to_rgb(msg) if self._is_compressed else image_to_rgb(msg)
            except ImageFormatError as exc:
                self._reject(cam, str(exc))
                continue
            frames.append(frame)
            items.append((cam, msg, t_recv, (time.perf_counter() - t0) * 1000.0,
                          self._wanted(cam)))
        if not frames:
            return
        color = any(w["color"] for *_, w in items)
        overlay = any(w["overlay"] for *_, w in items)
        kwargs = dict(color=color, overlay=overlay, overlay_alpha=self._alpha)
        try:
            if len(frames) == 1:
                results = [self.segmenter.segment(frames[0], **kwargs)]
            else:
                results = self.segmenter.segment_batch(frames, **kwargs)
        except ValueError as exc:  # the Segmenter refuses these frames
            for cam, *_ in items:
                self._reject(cam, f"segmenter: {exc}")
            return
        with self._lock:
            self._failures = 0
        for (cam, msg, t_recv, decode_ms, wanted), result in zip(items, results):
            self._publish(cam, msg, t_recv, t_start, decode_ms, wanted, result, len(frames))

    def _publish(self, cam, msg, t_recv, t_start, decode_ms, wanted, result, batch_size):
        t0 = time.perf_counter()
        header = msg.header
        sent = []
        for name, pixels, encoding in (("labels", result.labels, "mono8"),
                                       ("color", result.color, "rgb8"),
                                       ("overlay", result.overlay, "rgb8")):
            if wanted[name] and pixels is not None:
                # pre-serialized: one copy of the pixels instead of three
                cam.pubs[name].publish(serialize_image(header, pixels, encoding))
                sent.append(name)
        t_done = time.perf_counter()
        times = {"decode": decode_ms,
                 "preprocess": float(result.timings.get("preprocess", 0.0)),
                 "inference": float(result.timings.get("inference", 0.0)),
                 "postprocess": float(result.timings.get("postprocess", 0.0)),
                 "publish": (t_done - t0) * 1000.0,
                 "end_to_end": (t_done - t_recv) * 1000.0}
        cam.stages.add(times)
        self.stages.add(times)
        with self._lock:
            cam.counters.processed += 1
        report = diagnostics.latency_report(
            header, f"{self.get_fully_qualified_name()}/latency"
            + (f"/{cam.key}" if cam.key else ""), str(self.segmenter.device), times,
            (t_start - t_recv) * 1000.0, batch_size, sent)
        cam.pubs["latency"].publish(report)

    # -------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            for cam in self.cameras:
                cam.counters.mark(now)
            failing = self._last_error if self._failures >= FAILURES_FOR_ERROR else None
            if not self._worker.is_alive() and not self._stop:
                failing = "the inference thread stopped"
        inputs = {c.key: c.counters for c in self.cameras}
        health = assess(failing=failing, inputs=inputs, now=now, qos=self.qos_events,
                        publishers={c.key: c.publisher_count for c in self.cameras})
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self._node_status(health, now)]
        if self.cfg.cameras:
            array.status += [self._camera_status(c, now) for c in self.cameras]
        self._diag_pub.publish(array)

    def _node_status(self, health, now: float) -> DiagnosticStatus:
        seg = self.segmenter
        values = {
            "backend": seg.backend_name, "device": str(seg.device),
            "precision": self.cfg.precision, "input_size": self._input_size_text,
            "transport": self.cfg.input_transport,
            "input_topics": " ".join(c.resolved_topic for c in self.cameras),
            "input_reliability": " ".join(qos_tools.reliability_name(c.reliability)
                                          for c in self.cameras),
            "publishers": str(sum(c.publisher_count for c in self.cameras)),
        }
        values.update(diagnostics.counter_values((c.counters for c in self.cameras), now))
        values.update({"inference_failures": str(self._failures),
                       "last_error": self._last_error})
        values.update(diagnostics.qos_values(self.qos_events))
        values.update(diagnostics.stage_values(self.stages))
        return diagnostics.status(health.level, f"{self.get_name()}: segmentation",
                                  health.message, str(seg.device), values)

    def _camera_status(self, cam: CameraInput, now: float) -> DiagnosticStatus:
        return diagnostics.camera_status(
            f"{self.get_name()}: camera {cam.key}", str(self.segmenter.device),
            cam.resolved_topic, qos_tools.reliability_name(cam.reliability),
            cam.publisher_count, cam.counters, cam.stages, now)

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        self._worker.join(timeout=5.0)


def _start(profile: Optional[str]) -> Optional[SegmentationNode]:
    """Build the node; None when a signal (SIGINT, SIGTERM) ended start-up."""
    try:
        node = SegmentationNode()
    except _StartupInterrupted:
        return None
    if profile:
        node.get_logger().info(f"Fast DDS profile: {profile} (large shared-memory segment)")
    elif os.environ.get(qos_tools.PROFILE_ENV):
        node.get_logger().info(
            f"Fast DDS profile: {os.environ[qos_tools.PROFILE_ENV]} (the user's, from "
            f"{qos_tools.PROFILE_ENV}; the shipped large shared-memory profile is not applied)")
    return node


def main(args=None) -> int:
    """Console script: apply the Fast DDS profile, start the node, spin until SIGINT."""
    profile = qos_tools.apply_fastdds_profile()
    rclpy.init(args=args)
    node = None
    try:
        node = _start(profile)
        if node is not None:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin()
    except StartupError as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(exc))
        print(f"{NODE_NAME}: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
