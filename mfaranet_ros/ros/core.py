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

Each concern has its module; this one coordinates them: the camera inputs and their QoS
(:mod:`.inputs`), the worker thread (:mod:`.worker`), the ``/diagnostics`` statuses and the
latency report (:mod:`.diagnostics`), ``~/label_info`` and label maps
(:mod:`.label_outputs`), ``~/camera_info`` (:mod:`.camera_info`).

The executor thread only stores the newest frame of each camera; the one worker thread
(:class:`~.worker.FrameWorker`) decodes, runs the model (all cameras with a new frame as
one batch) and publishes. A frame replaced before the worker took it is counted as
dropped, so latency stays bounded at any camera rate. No transition but ``configure``
waits for the worker: ``deactivate`` and ``cleanup`` return at once, the batch in flight
is not published and the model is released once the worker has left it.
"""
from __future__ import annotations

import gc
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.qos import QoSPolicyKind
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..label_formats import confidence_to_mono8
from ..labelmap import LabelMapError
from . import camera_info as info_tools
from . import diagnostics, label_outputs
from . import qos as qos_tools
from .compat import PublisherEventCallbacks
from .conversions import ImageFormatError, compressed_to_rgb, image_to_rgb, serialize_image
from .inputs import CameraInput, Inputs
from .parameters import PARAMETERS, NodeConfig, input_size_request, resolve_weights, topic_layout
from .stats import QosEventCounters, StageStats, assess
from .worker import FrameWorker

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
#: configure: how long it waits for the previous worker to leave its batch (a build can
#: take minutes) before it fails with the reason
PREVIOUS_WORKER_WAIT_S = 30.0

Size = Optional[Tuple[int, int]]


class StartupError(RuntimeError):
    """The model cannot be configured (invalid parameters, unusable checkpoint); the text
    says why."""


class StartupInterrupted(BaseException):
    """SIGINT or SIGTERM arrived during start-up (model load, warm-up, discovery).

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way (a
    backend's fallback, a loader's error mapping) mistakes it for a failure.
    """


def _size_text(size: Size) -> str:
    return "x".join(str(v) for v in size) if size else "full resolution"


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

        self.worker = FrameWorker(self._fail)
        self._lock = self.worker.lock
        self.inputs: Optional[Inputs] = None   # the subscriptions, while active
        self._is_compressed = False
        self._input_size_text = ""
        self._prepared: set = set()
        #: (backend, precision, network (H, W)) -> why it failed: not retried
        self._failed_sizes: Dict[Tuple[str, str, Tuple[int, int]], str] = {}
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
        return self.worker.active

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
        if not self.worker.wait_stopped(PREVIOUS_WORKER_WAIT_S):
            raise StartupError(
                f"the previous model's inference thread is still running its batch after "
                f"{PREVIOUS_WORKER_WAIT_S:.0f} s (an engine build?); configure again once it "
                f"has finished")
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
            if not self.label_map.is_identity:   # colour and overlay in the map's colours
                self.segmenter.set_palette(self.label_map.model_palette(
                    len(self.segmenter.metadata.class_names)))
            self._warm_up()
            self._create_outputs(cfg)
            with self._lock:
                self._failures, self._last_error = 0, ""
                self._failed_sizes = {}
            seg = self.segmenter
            self.worker.start(self.cameras, lambda batch, publishable, account:
                              self._process(seg, batch, publishable, account))
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
            cam.pubs["camera_info"] = self._create_output(CameraInfo, cam.prefix + "camera_info",
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
        self.worker.activate()
        self._publish_label_info()
        self.inputs = Inputs(self.node, self.cameras, compressed=self._is_compressed,
                             reliability=self.cfg.qos_reliability, depth=self.cfg.qos_depth,
                             on_image=self._on_image, on_qos_event=self._qos_event)
        self.inputs.subscribe(DISCOVERY_WAIT_S)
        self.node.get_logger().info(f"subscribed to {self.inputs.describe()}; publishing "
                                    f"labels, color, overlay and latency")

    def _publish_label_info(self) -> None:
        """The class map on each camera's latched ~/label_info (when vision_msgs is there)."""
        class_map = self.label_map.class_map()
        for cam in self.cameras:
            if cam.label_info is not None:
                header = Header(stamp=self.node.get_clock().now().to_msg())
                cam.label_info.publish(label_outputs.label_info_message(header, class_map))

    def deactivate(self) -> None:
        """Unsubscribe and drop the pending frames; returns at once (the batch in flight
        finishes unpublished)."""
        self.worker.deactivate()
        self._unsubscribe()

    def _unsubscribe(self) -> None:
        if self.inputs is not None:
            self.inputs.unsubscribe()
            self.inputs = None

    def cleanup(self) -> None:
        """Stop the worker, destroy the outputs, release the model and its memory.

        Returns at once: with a batch in flight the outputs and the model are released
        by the worker once it has left the batch (whose results are not published).
        """
        self._unsubscribe()
        seg, self.segmenter = self.segmenter, None
        cameras, self.cameras = self.cameras, []
        with self._lock:
            self._failed_sizes = {}

        def release() -> None:
            nonlocal seg
            for cam in cameras:
                for pub in cam.pubs.values():
                    self._destroy_output_pub(pub)
                if cam.label_info is not None:
                    self.node.destroy_publisher(cam.label_info)
            seg, held = None, seg
            self._release_segmenter(held)
        self.worker.stop(release)

    def close(self, timeout: float = 10.0) -> None:
        """Whatever state it is in: stop and release everything (idempotent); waits up to
        ``timeout`` s for the batch in flight, the process is exiting."""
        self.cleanup()
        if not self.worker.wait_stopped(timeout):
            self.node.get_logger().warning(
                f"the inference thread is still in its batch after {timeout:.0f} s; exiting "
                f"without waiting for it")

    def _release_segmenter(self, seg) -> None:
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

    def _usable(self, seg, frames: List[Any], items: List[tuple], account) -> Tuple[list, list]:
        """The frames whose network size runs; the others are rejected with the reason.

        At full resolution the artifacts for a size not seen before are built here. A
        size that failed (a failed engine build, no int8 artifact) is remembered per
        backend and precision and not tried again; a camera changing size forgets the
        failures of sizes no camera sends any more.
        """
        keep_frames, keep_items = [], []
        for frame, item in zip(frames, items):
            cam = item[0]
            shape = tuple(seg.network_shape(frame.shape[:2]))
            key = (seg.backend_name, seg.precision, shape)
            with self._lock:
                if cam.last_shape != shape:
                    cam.last_shape = shape
                    live = {c.last_shape for c in self.cameras}
                    self._failed_sizes = {k: v for k, v in self._failed_sizes.items()
                                          if k[2] in live}
                failed = self._failed_sizes.get(key)
            if failed is None and shape not in self._prepared:
                failed = self._prepare(seg, shape, key)
            if failed is not None:
                self._reject(cam, failed, account)
                continue
            keep_frames.append(frame)
            keep_items.append(item)
        return keep_frames, keep_items

    def _prepare(self, seg, shape: Tuple[int, int], key) -> Optional[str]:
        """Build the backend's artifacts for ``shape``: None, or why it failed (kept)."""
        t0 = time.perf_counter()
        try:
            for b in range(1, self._max_batch() + 1):
                seg.backend.prepare(b, *shape)
        except Exception as exc:  # noqa: BLE001 - remembered and shown, not retried
            reason = (f"{seg.backend_name} {seg.precision} cannot run {_size_text(shape)} "
                      f"frames: {type(exc).__name__}: {exc}")
            with self._lock:
                self._failed_sizes[key] = reason
            return reason
        self._prepared.add(shape)
        self.node.get_logger().info(
            f"prepared the backend for {_size_text(shape)} frames in "
            f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        return None

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

    # ------------------------------------------------------------ executor side
    def _on_image(self, cam: CameraInput, msg) -> None:
        self.worker.offer(cam, msg)

    # -------------------------------------------------------------- worker side
    def _reject(self, cam: CameraInput, reason: str, account) -> None:
        account(cam, "rejected", reason)
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
        for name in ("confidence", "camera_info"):
            wanted[name] = cam.pubs[name].get_subscription_count() > 0
        return wanted

    def _decode(self, batch, account) -> Tuple[List[Any], List[tuple]]:
        """The batch's frames as RGB arrays and, per frame, what to publish it with."""
        frames, items = [], []
        for cam, msg, t_recv in batch:
            t0 = time.perf_counter()
            try:
                frame = compressed_to_rgb(msg) if self._is_compressed else image_to_rgb(msg)
            except ImageFormatError as exc:
                self._reject(cam, str(exc), account)
                continue
            frames.append(frame)
            cam.frame_shape = frame.shape[:2]
            items.append((cam, msg, t_recv, (time.perf_counter() - t0) * 1000.0,
                          self._wanted(cam)))
        return frames, items

    def _process(self, seg, batch, publishable: Callable[[], bool], account) -> None:
        """One batch, in the worker thread: every frame ends processed, dropped (not
        publishable any more) or rejected, through ``account``."""
        t_start = time.perf_counter()
        frames, items = self._decode(batch, account)
        if seg.input_size is None:
            frames, items = self._usable(seg, frames, items, account)
        if not frames:
            return
        kwargs = dict(color=any(w["color"] for *_, w in items),
                      overlay=any(w["overlay"] for *_, w in items), overlay_alpha=self.alpha,
                      confidence=any(w["confidence"] for *_, w in items),
                      network_resolution=self.cfg.label_resolution == "network")
        results = self._segment(seg, frames, items, kwargs, account)
        with self._lock:
            self._failures = 0
        for (cam, msg, t_recv, decode_ms, wanted), result in zip(items, results):
            if result is None:
                continue
            if not publishable():  # deactivated or cleaned up meanwhile
                account(cam, "dropped")
                continue
            self._publish(seg, cam, msg, t_recv, t_start, decode_ms, wanted, result,
                          len(frames), account)

    def _segment(self, seg, frames, items, kwargs, account) -> List[Any]:
        """The results, None where the Segmenter refused that frame: a refused batch is
        run frame by frame, so one bad camera rejects only its own frame."""
        try:
            if len(frames) == 1:
                return [seg.segment(frames[0], **kwargs)]
            return list(seg.segment_batch(frames, **kwargs))
        except ValueError as exc:  # the Segmenter refuses these frames
            if len(frames) == 1:
                self._reject(items[0][0], f"segmenter: {exc}", account)
                return [None]
        results = []
        for frame, item in zip(frames, items):
            try:
                results.append(seg.segment(frame, **kwargs))
            except ValueError as exc:
                self._reject(item[0], f"segmenter: {exc}", account)
                results.append(None)
        return results

    def _publish(self, seg, cam, msg, t_recv, t_start, decode_ms, wanted, result,
                 batch_size, account):
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
        if self._camera_info(cam, header, result.labels.shape[:2], wanted["camera_info"]):
            sent.append("camera_info")
        t_done = time.perf_counter()
        times = {"decode": decode_ms,
                 "preprocess": float(result.timings.get("preprocess", 0.0)),
                 "inference": float(result.timings.get("inference", 0.0)),
                 "postprocess": float(result.timings.get("postprocess", 0.0)),
                 "publish": (t_done - t0) * 1000.0,
                 "end_to_end": (t_done - t_recv) * 1000.0}
        cam.stages.add(times)
        self.stages.add(times)
        account(cam, "processed")
        report = diagnostics.latency_report(
            header, f"{self.node.get_fully_qualified_name()}/latency"
            + (f"/{cam.key}" if cam.key else ""), str(seg.device), times,
            (t_start - t_recv) * 1000.0, batch_size, sent)
        cam.pubs["latency"].publish(report)

    def _camera_info(self, cam: CameraInput, header, labels_hw, wanted: bool) -> bool:
        """``~/camera_info`` for this label image, from the camera's newest camera_info;
        a camera_info of another size than the frame is counted and warned about, and
        none goes out with this frame. True when one was published."""
        info = cam.camera_info
        if info is None:
            return False
        mismatch = info_tools.size_mismatch(info, cam.frame_shape)
        if mismatch:
            with self._lock:
                cam.counters.camera_info_mismatched += 1
            self.node.get_logger().warning(
                f"{cam.resolved_topic}: {mismatch}; the frame is segmented, its camera_info "
                f"is not published", throttle_duration_sec=5.0)
            return False
        if not wanted:
            return False
        cam.pubs["camera_info"].publish(info_tools.for_labels(info, header, labels_hw))
        return True

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
            failed_sizes = "; ".join(self._failed_sizes.values())
        if not self.worker.alive():
            failing = "the inference thread stopped"
        inputs = {c.key: c.counters for c in self.cameras}
        health = assess(failing=failing, inputs=inputs, now=now, qos=self.qos_events,
                        publishers={c.key: c.publisher_count for c in self.cameras})
        statuses = [self._node_status(health, now, failed_sizes)]
        if self.cfg.cameras:
            statuses += [self._camera_status(c, now) for c in self.cameras]
        return statuses

    def _lifecycle_values(self) -> Dict[str, str]:
        return {"lifecycle_state": self._state_label()} if self._state_label else {}

    def _unconfigured_status(self) -> DiagnosticStatus:
        return diagnostics.unconfigured_status(f"{self.node.get_name()}: segmentation",
                                               self._lifecycle_values(), self.configure_error)

    def _node_status(self, health, now: float, failed_sizes: str) -> DiagnosticStatus:
        seg = self.segmenter
        values = self._lifecycle_values()
        values.update({"backend": seg.backend_name, "device": str(seg.device),
                       "precision": seg.precision, "input_size": self._input_size_text,
                       "transport": self.cfg.input_transport})
        values.update(diagnostics.input_values(self.cameras, now))
        values.update({"inference_failures": str(self._failures),
                       "last_error": self._last_error, "failed_sizes": failed_sizes})
        values.update(diagnostics.qos_values(self.qos_events))
        values.update(diagnostics.stage_values(self.stages))
        return diagnostics.node_status(f"{self.node.get_name()}: segmentation", health,
                                       self.active, str(seg.device), values)

    def _camera_status(self, cam: CameraInput, now: float) -> DiagnosticStatus:
        return diagnostics.camera_status(f"{self.node.get_name()}: camera {cam.key}",
                                         str(self.segmenter.device), cam, now)
