"""The segmentation pipeline both nodes run, in steps a node class calls.

:class:`SegmentationCore` holds the model, the camera inputs, the outputs and the worker
thread. The plain ``segmentation_node`` runs its steps in a row at start-up
(configure, activate); the managed ``segmentation_lifecycle_node`` runs each from its
lifecycle transition:

- :meth:`SegmentationCore.configure`: load the checkpoint, build or load the backend's
  artifact, warm up, create the outputs, start the worker thread;
- :meth:`SegmentationCore.activate`: subscribe to the camera(s);
- :meth:`SegmentationCore.deactivate`: unsubscribe, drop the pending frames, wait for the
  batch in flight; the model stays loaded and warm;
- :meth:`SegmentationCore.cleanup`: stop the worker, destroy the outputs, release the
  model and its memory (the CUDA cache too).

The executor thread only stores the newest frame of each camera; the worker thread
decodes, runs the model (all cameras with a new frame as one batch) and publishes. A
frame replaced before the worker took it is counted as dropped, so latency stays
bounded at any camera rate.
"""
from __future__ import annotations

import gc
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.qos import QoSPolicyKind, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..label_formats import confidence_to_mono8
from ..labelmap import LabelMapError
from . import diagnostics, label_outputs
from . import qos as qos_tools
from .compat import PublisherEventCallbacks, SubscriptionEventCallbacks
from .conversions import ImageFormatError, compressed_to_rgb, image_to_rgb, serialize_image
from .parameters import PARAMETERS, NodeConfig, input_size_request, resolve_weights, topic_layout
from .stats import ERROR, OK, InputCounters, QosEventCounters, StageStats, assess

__all__ = ["NODE_NAME", "SegmentationCore", "StartupError", "StartupInterrupted",
           "RUNTIME_PARAMETERS"]

NODE_NAME = "mfaranet"
#: consecutive failed inference cycles after which /diagnostics reports ERROR
FAILURES_FOR_ERROR = 3
#: parameters that act at once; every other one is applied when the model is configured
RUNTIME_PARAMETERS = frozenset(p.name for p in PARAMETERS if not p.read_only)

#: qos_reliability auto: how long subscribing waits for a camera's publishers to be
#: discovered, so the subscription gets their reliability from the first frame on
DISCOVERY_WAIT_S = 2.0

Size = Optional[Tuple[int, int]]


class StartupError(RuntimeError):
    """The model cannot be configured (invalid parameters, unusable checkpoint); the text
    says why."""


class StartupInterrupted(BaseException):
    """SIGINT or SIGTERM arrived during start-up (model load, warm-up, discovery).

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way (a
    backend's fallback, a loader's error mapping) mistakes it for a failure.
    """


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _size_text(size: Size) -> str:
    return "x".join(str(v) for v in size) if size else "full resolution"


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
        self.label_info = None  # latched vision_msgs/LabelInfo publisher, when available
        self.counters = InputCounters()
        self.stages = StageStats()
        self.pending: Optional[Tuple[Any, float]] = None


class SegmentationCore:
    """Model, inputs, outputs and worker of one segmentation node (module docstring).

    ``create_output(msg_type, topic, qos, **kw)`` makes the output publishers: the node's
    ``create_publisher``, or ``create_lifecycle_publisher`` for the managed node (then
    nothing goes out while it is inactive). ``state_label`` (managed node only) names the
    lifecycle state in /diagnostics.
    """

    def __init__(self, node: Node, create_output: Callable[..., Any],
                 destroy_output: Callable[[Any], Any],
                 state_label: Optional[Callable[[], str]] = None):
        self.node = node
        self._create_output_pub = create_output
        self._destroy_output_pub = destroy_output
        self._state_label = state_label
        self.cfg: Optional[NodeConfig] = None
        self.segmenter = None
        self.label_map = None  # the label_map parameter's LabelMap, set on configure
        self.cameras: List[CameraInput] = []
        self.alpha = 0.5
        self.enabled = {"labels": True, "color": True, "overlay": True}
        self.configure_error = ""

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._active = False
        self._busy = False
        self._worker: Optional[threading.Thread] = None
        self._qos_timer = None
        self._is_compressed = False
        self._input_size_text = ""
        self._prepared: set = set()
        self.stages = StageStats()
        self.qos_events = QosEventCounters()
        self._failures = 0
        self._last_error = ""
        self._diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = node.create_timer(1.0, self._publish_diagnostics)

    @property
    def configured(self) -> bool:
        return self.segmenter is not None

    @property
    def active(self) -> bool:
        return self._active

    def set_runtime(self, name: str, value: Any) -> None:
        """Apply a parameter that acts at once (overlay_alpha, publish_*)."""
        if name == "overlay_alpha":
            self.alpha = float(value)
        elif name.startswith("publish_"):
            self.enabled[name[len("publish_"):]] = bool(value)

    # ------------------------------------------------------------------ transitions
    def configure(self, cfg: NodeConfig) -> None:
        """Load and warm up the model, create the outputs, start the worker.

        Raises StartupError (the reason) or StartupInterrupted; nothing is left behind.
        """
        self.cfg = cfg
        for name in RUNTIME_PARAMETERS:
            self.set_runtime(name, getattr(cfg, name))
        self.segmenter = self._load_segmenter(cfg)
        try:
            try:
                self.label_map = label_outputs.node_label_map(cfg.label_map,
                                                              self.segmenter.metadata)
            except LabelMapError as exc:
                raise StartupError(str(exc)) from None
            self._warm_up()
            self._create_outputs(cfg)
            with self._lock:
                self._stop = False
                self._failures, self._last_error = 0, ""
            self._worker = threading.Thread(target=self._work, name="mfaranet-inference",
                                            daemon=True)
            self._worker.start()
        except BaseException:
            self.cleanup()
            raise
        self.configure_error = ""

    def _create_outputs(self, cfg: NodeConfig) -> None:
        """The camera inputs (not yet subscribed) and their four reliable outputs each."""
        self._is_compressed = cfg.input_transport == "compressed"
        self.cameras = [CameraInput(*t) for t in topic_layout(cfg.cameras, cfg.input_transport)]
        out_qos = qos_tools.output_qos(cfg.qos_depth)
        for cam in self.cameras:
            cam.resolved_topic = self.node.resolve_topic_name(cam.input_topic)
            for name in ("labels", "color", "overlay", "confidence"):
                cam.pubs[name] = self._create_output(Image, cam.prefix + name, out_qos)
            cam.pubs["latency"] = self._create_output(DiagnosticArray, cam.prefix + "latency",
                                                      out_qos)
            # A plain publisher even on the managed node: the latched map goes out on
            # activate, before the lifecycle publishers are enabled.
            cam.label_info = label_outputs.create_label_info_output(
                self.node.create_publisher, cam.prefix + "label_info")
        if not label_outputs.label_info_available():
            self.node.get_logger().warning(label_outputs.MISSING_VISION_MSGS)

    def activate(self) -> None:
        """Decides each input's reliability from its publishers, then subscribes.

        ``auto`` first waits (at most :data:`DISCOVERY_WAIT_S`) for every camera's
        publishers to be discovered, as rosbag2's recorder subscribes to a topic once it
        has seen what its publishers offer: a reliable camera is then subscribed reliable
        before its first frame, which a best-effort subscription would lose when it is
        larger than the publisher's shared-memory segment. A camera with no publisher by
        then gets best effort (it matches any camera) and, like every input, is
        re-adapted when its publishers change.
        """
        with self._lock:
            self._active = True
        self._publish_label_info()
        if self.cfg.qos_reliability == "auto":
            self._wait_for_publishers(DISCOVERY_WAIT_S)
        for cam in self.cameras:
            self._adapt_input(cam)
        self._qos_timer = self.node.create_timer(0.5, self._adapt_all_inputs)
        topics = ", ".join(f"{c.resolved_topic} ({qos_tools.reliability_name(c.reliability)}, "
                           f"{_count(c.publisher_count, 'publisher')})" for c in self.cameras)
        self.node.get_logger().info(f"subscribed to {topics}; publishing labels, color, "
                                    f"overlay and latency")

    def _publish_label_info(self) -> None:
        """The class map on each camera's latched ~/label_info (when vision_msgs is there)."""
        class_map = self.label_map.class_map()
        for cam in self.cameras:
            if cam.label_info is not None:
                header = Header(stamp=self.node.get_clock().now().to_msg())
                cam.label_info.publish(label_outputs.label_info_message(header, class_map))

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

    def deactivate(self) -> None:
        """Unsubscribe and drop the pending frames; returns once no batch is in flight."""
        with self._lock:
            self._active = False
            for cam in self.cameras:
                if cam.pending is not None:
                    cam.pending = None
                    cam.counters.dropped += 1
        if self._qos_timer is not None:
            self.node.destroy_timer(self._qos_timer)
            self._qos_timer = None
        for cam in self.cameras:
            if cam.subscription is not None:
                self.node.destroy_subscription(cam.subscription)
                cam.subscription, cam.reliability, cam.publisher_count = None, None, 0
        with self._lock:
            while self._busy:
                self._wake.wait(0.1)

    def cleanup(self) -> None:
        """Stop the worker, destroy the outputs, release the model and its memory."""
        if self._active:
            self.deactivate()
        self._stop_worker()
        for cam in self.cameras:
            for pub in cam.pubs.values():
                self._destroy_output_pub(pub)
            if cam.label_info is not None:
                self.node.destroy_publisher(cam.label_info)
        self.cameras = []
        self._release_segmenter()

    def close(self) -> None:
        """Whatever state it is in: stop and release everything (idempotent)."""
        self.cleanup()

    def _stop_worker(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def _release_segmenter(self) -> None:
        seg, self.segmenter = self.segmenter, None
        if seg is None:
            return
        on_cuda = str(seg.device).startswith("cuda")
        del seg
        gc.collect()  # the backend's tensors and sessions go with their last reference
        if on_cuda:
            import torch
            torch.cuda.empty_cache()  # hand the cached blocks back to the driver
        self.node.get_logger().info("model released")

    # ------------------------------------------------------------------------ model
    def _load_segmenter(self, cfg: NodeConfig):
        """The Segmenter for the parameters, with the input size resolved and logged."""
        from mfaranet_ros.inference import Segmenter  # heavy: torch and the backends
        from mfaranet_ros.model import CheckpointError

        path = resolve_weights(cfg.weights)
        self.node.get_logger().info(f"loading {path} (backend {cfg.backend}, precision "
                                    f"{cfg.precision})")
        try:
            seg = Segmenter.from_checkpoint(
                path, backend=cfg.backend, device=cfg.device or None, precision=cfg.precision,
                input_size=input_size_request(cfg.input_size), pruned=cfg.pruned,
                cache_dir=cfg.engine_cache_dir or None)
        except CheckpointError as exc:
            raise StartupError(f"cannot load checkpoint {path!r}: {exc}") from None
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise StartupError(f"cannot start the {cfg.backend} backend with {path!r}: "
                               f"{type(exc).__name__}: {exc}") from None
        self._input_size_text = _size_text(seg.input_size)
        self.node.get_logger().info(f"network input {seg.input_size_reason} "
                                    f"(input_size {list(cfg.input_size)})")
        return seg

    def _warm_up(self) -> None:
        """Builds the backend's artifacts at the shape frames will run at.

        With a network input size every frame is letterboxed into it, so that shape, for
        every batch size a cycle can have (1..number of cameras): no artifact is built
        while frames wait. At full resolution the shape is the camera's: see
        :meth:`_prepare_shapes`, called for the first frame of each size.
        """
        seg = self.segmenter
        self._prepared = set()
        warm_s = 0.0
        if seg.input_size is not None:
            from mfaranet_ros.inference import BackendUnavailable

            try:
                warm_s = sum(seg.warmup(frame_shape=seg.input_size, batch=b)
                             for b in range(1, self._max_batch() + 1))
            except BackendUnavailable as exc:  # a failed engine build, no int8 artifact ...
                raise StartupError(f"cannot start the {seg.backend_name} backend: {exc}") from None
            self._prepared.add(tuple(seg.input_size))
        warm = (f"warm-up {warm_s * 1000:.0f} ms" if seg.input_size is not None else
                "warm-up at each camera's first frame size (full resolution)")
        self.node.get_logger().info(
            f"model ready: backend {seg.backend_name}, device {seg.device}, input size "
            f"{self._input_size_text}, {len(seg.metadata.class_names)} classes, {warm}")

    def _max_batch(self) -> int:
        return max(1, len(self.cfg.cameras))

    def _prepare_shapes(self, frames: List[Any]) -> None:
        """Full resolution: build the artifacts for a frame size not seen before."""
        for frame in frames:
            shape = self.segmenter.network_shape(frame.shape[:2])
            if shape in self._prepared:
                continue
            t0 = time.perf_counter()
            for b in range(1, self._max_batch() + 1):
                self.segmenter.backend.prepare(b, *shape)
            self._prepared.add(shape)
            self.node.get_logger().info(
                f"prepared the backend for {_size_text(shape)} frames in "
                f"{(time.perf_counter() - t0) * 1000:.0f} ms")

    # ---------------------------------------------------------------- QoS, events
    def _create_output(self, msg_type, topic: str, qos):
        def on_incompatible(event, name=self.node.resolve_topic_name(topic)):
            self._qos_event("incompatible_offered", event, name)
        return self._create_output_pub(
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
        self.node.get_logger().warning(
            f"QoS event on {topic}: {what} (policy {policy_name or '-'}, {change} new)",
            throttle_duration_sec=5.0)

    def _adapt_all_inputs(self) -> None:
        for cam in self.cameras:
            self._adapt_input(cam)

    def _adapt_input(self, cam: CameraInput) -> None:
        """(Re)create the camera subscription with the reliability its publishers need."""
        node = self.node
        infos = node.get_publishers_info_by_topic(cam.resolved_topic)
        cam.publisher_count = len(infos)
        want = qos_tools.choose_reliability(
            self.cfg.qos_reliability, [i.qos_profile.reliability for i in infos],
            cam.reliability)
        if cam.subscription is not None and want == cam.reliability:
            return
        if cam.subscription is not None:
            node.destroy_subscription(cam.subscription)
            node.get_logger().info(
                f"{cam.resolved_topic}: input QoS {qos_tools.reliability_name(cam.reliability)}"
                f" -> {qos_tools.reliability_name(want)} ({_count(len(infos), 'publisher')})")
        topic = cam.resolved_topic
        callbacks = SubscriptionEventCallbacks(
            incompatible_qos=lambda e, t=topic: self._qos_event("incompatible_requested", e, t),
            message_lost=lambda e, t=topic: self._qos_event("messages_lost", e, t))
        cam.subscription = node.create_subscription(
            CompressedImage if self._is_compressed else Image, cam.input_topic,
            lambda msg, c=cam: self._on_image(c, msg),
            qos_tools.input_qos(want, self.cfg.qos_depth), event_callbacks=callbacks)
        cam.reliability = want

    # ------------------------------------------------------------ executor side
    def _on_image(self, cam: CameraInput, msg) -> None:
        now = time.perf_counter()
        with self._lock:
            if not self._active:
                return
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
                self._busy = True
            try:
                self._process(batch)
            except Exception as exc:  # noqa: BLE001 - the worker must survive and report
                if not rclpy.ok(context=self.node.context) or self._stop:
                    return
                self._fail(f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._busy = False
                    self._wake.notify_all()

    def _reject(self, cam: CameraInput, reason: str) -> None:
        with self._lock:
            cam.counters.rejected += 1
            cam.counters.last_reject_reason = reason
        where = cam.resolved_topic or cam.input_topic
        self.node.get_logger().warning(f"rejected a frame on {where}: {reason}",
                                       throttle_duration_sec=2.0)

    def _fail(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = reason
        self.node.get_logger().error(f"inference failed: {reason}", throttle_duration_sec=2.0)

    def _wanted(self, cam: CameraInput) -> Dict[str, bool]:
        wanted = {name: self.enabled[name] and cam.pubs[name].get_subscription_count() > 0
                  for name in ("labels", "color", "overlay")}
        # computed only while someone subscribes (it costs a softmax)
        wanted["confidence"] = cam.pubs["confidence"].get_subscription_count() > 0
        return wanted

    def _decode(self, batch) -> Tuple[List[Any], List[tuple]]:
        """The batch's frames as RGB arrays and, per frame, what to publish it with."""
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
        return frames, items

    def _process(self, batch) -> None:
        t_start = time.perf_counter()
        frames, items = self._decode(batch)
        if not frames:
            return
        if self.segmenter.input_size is None:
            self._prepare_shapes(frames)
        kwargs = dict(color=any(w["color"] for *_, w in items),
                      overlay=any(w["overlay"] for *_, w in items), overlay_alpha=self.alpha,
                      confidence=any(w["confidence"] for *_, w in items))
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
        for name, pixels, encoding in (("labels", self.label_map.apply(result.labels), "mono8"),
                                       ("color", result.color, "rgb8"),
                                       ("overlay", result.overlay, "rgb8")):
            if wanted[name] and pixels is not None:
                if name == "labels" and self.cfg.label_format == "autoware_rle":
                    cam.pubs[name].publish(label_outputs.autoware_rle_image(header, pixels))
                else:  # pre-serialized: one copy of the pixels instead of three
                    cam.pubs[name].publish(serialize_image(header, pixels, encoding))
                sent.append(name)
        if wanted["confidence"] and result.confidence is not None:
            cam.pubs["confidence"].publish(
                serialize_image(header, confidence_to_mono8(result.confidence), "mono8"))
            sent.append("confidence")
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
            header, f"{self.node.get_fully_qualified_name()}/latency"
            + (f"/{cam.key}" if cam.key else ""), str(self.segmenter.device), times,
            (t_start - t_recv) * 1000.0, batch_size, sent)
        cam.pubs["latency"].publish(report)

    # -------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        if self.configured:
            array.status = self._running_statuses(time.monotonic())
        else:
            array.status = [self._unconfigured_status()]
        self._diag_pub.publish(array)

    def _running_statuses(self, now: float) -> List[DiagnosticStatus]:
        with self._lock:
            for cam in self.cameras:
                cam.counters.mark(now)
            failing = self._last_error if self._failures >= FAILURES_FOR_ERROR else None
            if self._worker is not None and not self._worker.is_alive() and not self._stop:
                failing = "the inference thread stopped"
        inputs = {c.key: c.counters for c in self.cameras}
        health = assess(failing=failing, inputs=inputs, now=now, qos=self.qos_events,
                        publishers={c.key: c.publisher_count for c in self.cameras})
        statuses = [self._node_status(health, now)]
        if self.cfg.cameras:
            statuses += [self._camera_status(c, now) for c in self.cameras]
        return statuses

    def _lifecycle_values(self) -> Dict[str, str]:
        return {"lifecycle_state": self._state_label()} if self._state_label else {}

    def _unconfigured_status(self) -> DiagnosticStatus:
        """Managed node before configure (or after cleanup): no model, why if it failed."""
        values = self._lifecycle_values()
        values["last_error"] = self.configure_error
        if self.configure_error:
            level, message = ERROR, f"configure failed: {self.configure_error}"
        else:
            level, message = OK, "no model loaded: waiting for configure"
        return diagnostics.status(level, f"{self.node.get_name()}: segmentation", message,
                                  "", values)

    def _node_status(self, health, now: float) -> DiagnosticStatus:
        seg = self.segmenter
        values = self._lifecycle_values()
        values.update({
            "backend": seg.backend_name, "device": str(seg.device),
            "precision": self.cfg.precision, "input_size": self._input_size_text,
            "transport": self.cfg.input_transport,
            "input_topics": " ".join(c.resolved_topic for c in self.cameras),
            "input_reliability": " ".join(qos_tools.reliability_name(c.reliability)
                                          for c in self.cameras),
            "publishers": str(sum(c.publisher_count for c in self.cameras)),
        })
        values.update(diagnostics.counter_values((c.counters for c in self.cameras), now))
        values.update({"inference_failures": str(self._failures),
                       "last_error": self._last_error})
        values.update(diagnostics.qos_values(self.qos_events))
        values.update(diagnostics.stage_values(self.stages))
        message = health.message
        if not self._active and health.level == OK:
            message = "inactive: model loaded and warm, not subscribed"
        return diagnostics.status(health.level, f"{self.node.get_name()}: segmentation",
                                  message, str(seg.device), values)

    def _camera_status(self, cam: CameraInput, now: float) -> DiagnosticStatus:
        return diagnostics.camera_status(
            f"{self.node.get_name()}: camera {cam.key}", str(self.segmenter.device),
            cam.resolved_topic, qos_tools.reliability_name(cam.reliability),
            cam.publisher_count, cam.counters, cam.stages, now)
