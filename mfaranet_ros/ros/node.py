"""``segmentation_node``: camera images in; labels, color, overlay and latency out.

A thin adapter: message -> :mod:`conversions` -> Segmenter -> :mod:`conversions` ->
message. The executor thread only stores the newest frame of each camera; one worker
thread decodes, runs the model (all cameras with a new frame as one batch) and publishes.
A frame replaced before the worker took it is counted as dropped, so latency stays
bounded at any camera rate.

Start-up is a sequence of named steps, each a method of :class:`SegmentationNode`:
read and validate the parameters, load the segmenter, warm it up at the shape frames
will run at, create the outputs, decide each input's QoS from the camera's publishers,
subscribe. :func:`run` (signals, spinning, clean-up) is shared by every node of the
package.

Per-frame latency goes out on ``~/latency`` (or ``<camera>/latency``) as a
``diagnostic_msgs/DiagnosticArray``: its header is the input frame's header, and its one
status carries the stage times in milliseconds as key/values (``decode_ms``,
``preprocess_ms``, ``inference_ms``, ``postprocess_ms``, ``publish_ms``,
``end_to_end_ms``, ``queue_ms``, ``batch_size``, ``outputs``).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSPolicyKind, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from . import diagnostics
from . import qos as qos_tools
from .conversions import ImageFormatError, compressed_to_rgb, image_to_rgb, serialize_image
from .node_parameters import ParameterError, declare_parameters, integers_as_doubles
from .parameters import (CHECKPOINT_SIZE, NodeConfig, input_size_request, resolve_weights,
                         topic_layout, validate_parameter)
from .stats import InputCounters, QosEventCounters, StageStats, assess

__all__ = ["SegmentationNode", "StartupError", "StartupInterrupted", "ShutdownSignals",
           "resolve_input_size", "run", "main"]

NODE_NAME = "mfaranet"
#: consecutive failed inference cycles after which /diagnostics reports ERROR
FAILURES_FOR_ERROR = 3
#: qos_reliability auto: how long start-up waits for a camera's publishers to be
#: discovered, so the subscription gets their reliability from the first frame on
DISCOVERY_WAIT_S = 2.0

Size = Optional[Tuple[int, int]]


class StartupError(RuntimeError):
    """The node cannot start (invalid parameters, unusable checkpoint); the text says why."""


class StartupInterrupted(BaseException):
    """SIGINT or SIGTERM arrived during start-up (model load, warm-up, discovery).

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way (a
    backend's fallback, a loader's error mapping) mistakes it for a failure.
    """


class ShutdownSignals:
    """SIGINT and SIGTERM, any number of them: the first ends the node, the rest are ignored.

    A terminal's Ctrl-C reaches the whole process group and ``ros2 launch`` forwards its own
    SIGINT (then SIGTERM), so two or three signals often arrive tenths of a second apart. A
    second KeyboardInterrupt inside the clean-up would print a traceback and exit -2, and a
    signal during the interpreter's exit (which puts the default handlers back) would kill
    the process. So rclpy's handlers stay off (``SignalHandlerOptions.NO``); the first signal
    sets :attr:`received` and makes both signals ignored from then on; during start-up it
    also raises :class:`StartupInterrupted` to abandon the model load.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received = threading.Event()
        self._raise_on_first = True

    def install(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)

    def started(self) -> None:
        """Start-up is over: from now on a signal only sets :attr:`received`."""
        self._raise_on_first = False

    def ignore(self) -> None:
        """No signal can interrupt what follows (clean-up, the interpreter's exit)."""
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def _handle(self, signum, frame) -> None:
        self.ignore()
        self.received.set()
        if self._raise_on_first:
            self._raise_on_first = False
            raise StartupInterrupted(signal.Signals(signum).name)


def resolve_input_size(requested: Any, weights_path: str) -> Tuple[Size, str]:
    """The network input ``(H, W)`` or None (full resolution), and why.

    ``requested`` is :func:`~.parameters.input_size_request`'s answer; ``"checkpoint"``
    is looked up in the checkpoint's metadata (an imported official checkpoint records
    none: full resolution).
    """
    if requested is None:
        return None, "input_size [0, 0]"
    if requested != CHECKPOINT_SIZE:
        return (int(requested[0]), int(requested[1])), "input_size parameter"
    from mfaranet_ros.model import read_checkpoint

    recorded = read_checkpoint(weights_path).metadata.input_size
    if recorded:
        return (int(recorded[0]), int(recorded[1])), "recorded in the checkpoint"
    return None, "the checkpoint records no input size"


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
        self.counters = InputCounters()
        self.stages = StageStats()
        self.pending: Optional[Tuple[Any, float]] = None


class SegmentationNode(Node):
    """The MFARANet segmentation node (see the module docstring)."""

    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.cfg = self.read_parameters()
        self.segmenter = self.load_segmenter()  # before any subscription exists
        self.warm_up()
        self._init_pipeline_state()
        self.create_outputs()
        self._start_worker()
        self.subscribe_inputs()
        self._qos_timer = self.create_timer(0.5, self._adapt_all_inputs)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)

    # ------------------------------------------------------- step 1: parameters
    def read_parameters(self) -> NodeConfig:
        """Declares the parameter table; refuses bad values in one line (StartupError)."""
        try:
            cfg = declare_parameters(self)
        except ParameterError as exc:
            raise StartupError(f"invalid parameters: {exc}") from None
        self._alpha = cfg.overlay_alpha
        self._enabled = {"labels": cfg.publish_labels, "color": cfg.publish_color,
                         "overlay": cfg.publish_overlay}
        self.add_pre_set_parameters_callback(integers_as_doubles)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        return cfg

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

    # ------------------------------------------------------ step 2: the model
    def load_segmenter(self):
        """The Segmenter for the parameters, with the input size resolved and logged."""
        from mfaranet_ros.inference import Segmenter  # heavy: torch and the backends
        from mfaranet_ros.model import CheckpointError

        cfg = self.cfg
        path = resolve_weights(cfg.weights)
        self.get_logger().info(f"loading {path} (backend {cfg.backend}, precision "
                               f"{cfg.precision})")
        try:
            size, why = resolve_input_size(input_size_request(cfg.input_size), path)
            seg = Segmenter.from_checkpoint(
                path, backend=cfg.backend, device=cfg.device or None, precision=cfg.precision,
                input_size=size, pruned=cfg.pruned, cache_dir=cfg.engine_cache_dir or None)
        except CheckpointError as exc:
            raise StartupError(f"cannot load checkpoint {path!r}: {exc}") from None
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise StartupError(f"cannot start the {cfg.backend} backend with {path!r}: "
                               f"{type(exc).__name__}: {exc}") from None
        self._input_size_text = _size_text(seg.input_size)
        self.get_logger().info(f"network input {self._input_size_text} ({why})")
        return seg

    # ---------------------------------------------------------- step 3: warm-up
    def warm_up(self) -> None:
        """Builds the backend's artifacts at the shape frames will run at.

        With a network input size every frame is letterboxed into it, so that shape, for
        every batch size a cycle can have (1..number of cameras): no artifact is built
        while frames wait. At full resolution the shape is the camera's: see
        :meth:`_prepare_shapes`, called for the first frame of each size.
        """
        seg = self.segmenter
        self._prepared: set = set()
        warm_s = 0.0
        if seg.input_size is not None:
            from mfaranet_ros.inference import BackendUnavailable

            try:
                warm_s = sum(seg.warmup(frame_shape=seg.input_size, batch=b)
                             for b in range(1, self._max_batch() + 1))
            except BackendUnavailable as exc:  # e.g. no int8 artifact for this input size
                raise StartupError(f"cannot start the {self.cfg.backend} backend: {exc}") from None
            self._prepared.add(tuple(seg.input_size))
        warm = (f"warm-up {warm_s * 1000:.0f} ms" if seg.input_size is not None else
                "warm-up at each camera's first frame size (full resolution)")
        self.get_logger().info(
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
            self.get_logger().info(f"prepared the backend for {_size_text(shape)} frames in "
                                   f"{(time.perf_counter() - t0) * 1000:.0f} ms")

    # ---------------------------------------------------------- step 4: outputs
    def _init_pipeline_state(self) -> None:
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

    def create_outputs(self) -> None:
        """Four reliable outputs per camera and /diagnostics."""
        out_qos = qos_tools.output_qos(self.cfg.qos_depth)
        for cam in self.cameras:
            for name in ("labels", "color", "overlay"):
                cam.pubs[name] = self._create_output(Image, cam.prefix + name, out_qos)
            cam.pubs["latency"] = self._create_output(DiagnosticArray, cam.prefix + "latency",
                                                      out_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._work, name="mfaranet-inference",
                                        daemon=True)
        self._worker.start()

    def _create_output(self, msg_type, topic: str, qos):
        def on_incompatible(event, name=self.resolve_topic_name(topic)):
            self._qos_event("incompatible_offered", event, name)
        return self.create_publisher(
            msg_type, topic, qos,
            event_callbacks=PublisherEventCallbacks(incompatible_qos=on_incompatible))

    # ------------------------------------------------- step 5: QoS, subscriptions
    def subscribe_inputs(self) -> None:
        """Decides each input's reliability from its publishers, then subscribes.

        ``auto`` first waits (at most :data:`DISCOVERY_WAIT_S`) for every camera's
        publishers to be discovered, as rosbag2's recorder subscribes to a topic once it
        has seen what its publishers offer: a reliable camera is then subscribed reliable
        before its first frame, which a best-effort subscription would lose when it is
        larger than the publisher's shared-memory segment. A camera with no publisher by
        then gets best effort (it matches any camera) and, like every input, is
        re-adapted when its publishers change.
        """
        for cam in self.cameras:
            cam.resolved_topic = self.resolve_topic_name(cam.input_topic)
        if self.cfg.qos_reliability == "auto":
            self._wait_for_publishers(DISCOVERY_WAIT_S)
        for cam in self.cameras:
            self._adapt_input(cam)
        topics = ", ".join(f"{c.resolved_topic} ({qos_tools.reliability_name(c.reliability)}, "
                           f"{_count(c.publisher_count, 'publisher')})" for c in self.cameras)
        self.get_logger().info(f"subscribed to {topics}; publishing labels, color, overlay "
                               f"and latency")

    def _wait_for_publishers(self, timeout: float) -> None:
        def missing():
            return [c.resolved_topic for c in self.cameras
                    if not self.count_publishers(c.resolved_topic)]
        waiting = missing()
        if not waiting:
            return
        self.get_logger().info(f"waiting up to {timeout:.1f} s for publishers on "
                               f"{', '.join(waiting)} (qos_reliability auto)")
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline and self.context.ok():
            time.sleep(0.05)
            waiting = missing()
        if waiting:
            self.get_logger().info(
                f"no publisher yet on {', '.join(waiting)}: subscribing best effort (it "
                f"matches any camera) and adapting when one appears")

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
                f" -> {qos_tools.reliability_name(want)} ({_count(len(infos), 'publisher')})")
        topic = cam.resolved_topic
        callbacks = SubscriptionEventCallbacks(
            incompatible_qos=lambda e, t=topic: self._qos_event("incompatible_requested", e, t),
            message_lost=lambda e, t=topic: self._qos_event("messages_lost", e, t))
        cam.subscription = self.create_subscription(
            CompressedImage if self._is_compressed else Image, cam.input_topic,
            lambda msg, c=cam: self._on_image(c, msg),
            qos_tools.input_qos(want, self.cfg.qos_depth), event_callbacks=callbacks)
        cam.reliability = want

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
                      overlay=any(w["overlay"] for *_, w in items), overlay_alpha=self._alpha)
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
        """Stops the worker (the frame in progress finishes, at most 5 s)."""
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        self._worker.join(timeout=5.0)


def _spin_until(node: Node, stop: threading.Event) -> None:
    """Spins ``node`` until a signal sets ``stop`` or the context is shut down.

    Short waits, because a Python signal handler runs only between the executor's waits.
    """
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and node.context.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown(timeout_sec=1.0)


def run(make_node: Callable[[], Node], args=None) -> int:
    """Applies the Fast DDS profile, starts the node ``make_node()`` returns, spins until
    SIGINT / SIGTERM and cleans up; the process exit code.

    0 after any number of signals, at any point; 1 with one line on stderr when start-up
    fails. The node may define ``close()`` (called before ``destroy_node``).
    """
    applied = qos_tools.apply_fastdds_profile()
    signals = ShutdownSignals()
    signals.install()
    logger = rclpy.logging.get_logger(NODE_NAME)
    node = None
    try:
        try:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        except RuntimeError as exc:  # rcl refuses the --ros-args (a log level, a YAML file)
            raise StartupError(f"cannot start ROS: {exc}") from None
        node = make_node()
        node.get_logger().info(qos_tools.describe_profile(applied))
        signals.started()
        _spin_until(node, signals.received)
    except StartupInterrupted:
        pass
    except StartupError as exc:
        logger.fatal(str(exc))
        return 1
    except ExternalShutdownException:
        pass
    finally:
        signals.ignore()  # a signal during the clean-up changes nothing
        if node is not None:
            getattr(node, "close", lambda: None)()
            node.destroy_node()
        # rclpy's default would put the default handlers back: a late signal would kill
        rclpy.try_shutdown(uninstall_handlers=False)
    return 0


def main(args=None) -> int:
    """Console script ``segmentation_node``."""
    return run(SegmentationNode, args)


if __name__ == "__main__":
    sys.exit(main())
