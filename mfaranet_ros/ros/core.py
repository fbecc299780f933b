"""What both nodes run, as the steps a node class calls; this module only coordinates.

:class:`SegmentationCore` wires the node's parts together. The plain ``segmentation_node``
runs its steps in a row at start-up (configure, activate); the managed
``segmentation_lifecycle_node`` runs each from its lifecycle transition:

- :meth:`SegmentationCore.configure`: load the model and prepare every variant it may
  need (:mod:`.model_slot`), create the outputs (:mod:`.outputs`), start the worker
  thread (:mod:`.worker`) on a batch pipeline (:mod:`.pipeline`);
- :meth:`SegmentationCore.activate`: subscribe to the camera(s) (:mod:`.inputs`);
- :meth:`SegmentationCore.deactivate`: unsubscribe, drop the pending frames; the batch
  in flight is not published; the model stays loaded and warm;
- :meth:`SegmentationCore.cleanup`: destroy the outputs (here, on the executor thread),
  stop the worker, release the model and its memory once the worker has left it;
- :meth:`SegmentationCore.close`: cleanup from any state, then one bounded wait
  (:data:`SHUTDOWN_WAIT_S` in all, however often it is called) for the batch in flight.

The other concerns have their modules too: ``/diagnostics`` and the latency report
(:mod:`.diagnostics`), QoS events (:mod:`.qos_events`), ``~/label_info`` and label maps
(:mod:`.label_outputs`), ``~/camera_info`` (:mod:`.camera_info`).
"""
from __future__ import annotations

import time
from typing import Any, Callable, List, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Header

from ..labelmap import LabelMapError
from . import diagnostics, label_outputs
from . import qos as qos_tools
from .inputs import CameraInput, Inputs
from .model_slot import ModelSlot, StartupError, StartupInterrupted, release_model
from .outputs import CameraOutputs
from .parameters import PARAMETERS, NodeConfig, input_size_request, resolve_weights, topic_layout
from .pipeline import BatchPipeline, RunConfig, RuntimeSettings
from .qos_events import QosEventMonitor
from .stats import StageStats
from .worker import FrameWorker

__all__ = ["NODE_NAME", "SegmentationCore", "StartupError", "StartupInterrupted",
           "RUNTIME_PARAMETERS", "SHUTDOWN_WAIT_S"]

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
#: close: the one wait for the batch in flight before the process exits (launch escalates
#: to SIGTERM after 5 s of SIGINT, then SIGKILL)
SHUTDOWN_WAIT_S = 5.0


def publish_overlap(choice: str, device: Any) -> bool:
    """``publish_overlap`` decided: ``auto`` is ``always`` where inference runs on a GPU (it waits
    for the device, leaving the CPU to publishing) and ``never`` on the CPU, where inference uses
    every core and a publishing thread beside it would slow it down."""
    if choice != "auto":
        return choice == "always"
    return str(device).startswith("cuda")


class SegmentationCore:
    """The parts of one segmentation node, coordinated (module docstring).

    ``create_output(msg_type, topic, qos, **kw)`` / ``destroy_output(pub)`` make and destroy
    the output publishers: the node's ``create_publisher``, or the managed node's lifecycle
    publishers (nothing goes out while it is inactive). ``state_label`` (managed node only)
    names the lifecycle state in /diagnostics.
    """

    def __init__(self, node: Node, create_output: Callable[..., Any],
                 destroy_output: Callable[[Any], Any],
                 state_label: Optional[Callable[[], str]] = None):
        self.node = node
        self._create_output_pub = create_output
        self._destroy_output_pub = destroy_output
        self._state_label = state_label
        self.cfg: Optional[NodeConfig] = None
        self.slot = ModelSlot(node.get_logger())
        self.label_map = None  # the label_map parameter's LabelMap, set on configure
        self.cameras: List[CameraInput] = []
        self.settings = RuntimeSettings()
        self.configure_error = ""
        self.overlap = False   # publish_overlap, decided at configure

        self.worker = FrameWorker(self._fail)
        self._lock = self.worker.lock
        self.inputs: Optional[Inputs] = None   # the subscriptions, while active
        self.stages = StageStats()
        self.qos_events = QosEventMonitor(node.get_logger(), self._lock)
        self._failures = 0
        self._last_error = ""
        self._close_deadline: Optional[float] = None
        self._diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = node.create_timer(1.0, self._publish_diagnostics)

    @property
    def segmenter(self):
        """The loaded Segmenter (None while unconfigured); held by the model slot only."""
        return self.slot.segmenter

    @property
    def configured(self) -> bool:
        return self.slot.loaded

    @property
    def active(self) -> bool:
        return self.worker.active

    def set_runtime(self, name: str, value: Any) -> None:
        """Apply a parameter that acts at once (overlay_alpha, publish_*)."""
        self.settings = self.settings.with_parameter(name, value)

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
        self._close_deadline = None
        for name in RUNTIME_PARAMETERS:
            self.set_runtime(name, getattr(cfg, name))
        self.qos_events.reliability = cfg.qos_reliability
        self.slot.load(cfg, resolve_weights(cfg.weights), input_size_request(cfg.input_size))
        try:
            seg = self.slot.segmenter
            try:
                self.label_map = label_outputs.node_label_map(cfg.label_map, seg.metadata)
            except LabelMapError as exc:
                raise StartupError(str(exc)) from None
            if not self.label_map.is_identity:   # colour and overlay in the map's colours
                seg.set_palette(self.label_map.model_palette(len(seg.metadata.class_names)))
            del seg
            self.slot.warm_up()
            self._create_outputs(cfg)
            self._start_worker(cfg)
        except BaseException:
            self.cleanup()
            raise
        self.configure_error = ""

    def _start_worker(self, cfg: NodeConfig) -> None:
        """The worker thread on a batch pipeline with this configure's snapshot."""
        with self._lock:
            self._failures, self._last_error = 0, ""
        run = RunConfig(compressed=cfg.input_transport == "compressed",
                        label_format=cfg.label_format,
                        network_resolution=cfg.label_resolution == "network",
                        label_map=self.label_map,
                        latency_name=f"{self.node.get_fully_qualified_name()}/latency")
        pipeline = BatchPipeline(self.slot, run, lambda: self.settings, self.cameras,
                                 self.node.get_logger(), self._lock, self.stages,
                                 self._processed)
        self.overlap = publish_overlap(cfg.publish_overlap, self.slot.segmenter.device)
        self.worker.start(self.cameras, pipeline, overlap=self.overlap)

    def _create_outputs(self, cfg: NodeConfig) -> None:
        """The camera inputs (not yet subscribed) and their outputs."""
        self.cameras = [CameraInput(*t) for t in topic_layout(cfg.cameras, cfg.input_transport)]
        out_qos = qos_tools.output_qos(cfg.qos_depth)
        confidence = self.slot.confidence_anywhere()
        for cam in self.cameras:
            cam.resolved_topic = self.node.resolve_topic_name(cam.input_topic)
            cam.outputs = CameraOutputs(self.node, cam.prefix, out_qos, self._create_output_pub,
                                        self._destroy_output_pub,
                                        self.qos_events.on_incompatible_subscriber,
                                        confidence=confidence)
        if not label_outputs.label_info_available():
            self.node.get_logger().warning(label_outputs.MISSING_VISION_MSGS)

    def activate(self) -> None:
        """Decides each input's reliability from its publishers, then subscribes
        (:meth:`.inputs.Inputs.subscribe`: ``auto`` waits up to :data:`DISCOVERY_WAIT_S`
        for the cameras' publishers, as rosbag2's recorder does)."""
        self.worker.activate()
        self._publish_label_info()
        own = {t for cam in self.cameras for t in cam.outputs.topics().values()}
        self.inputs = Inputs(self.node, self.cameras, compressed=self.cfg.input_transport ==
                             "compressed", reliability=self.cfg.qos_reliability,
                             depth=self.cfg.qos_depth, on_image=self.worker.offer,
                             on_qos_event=self.qos_events.record, own_topics=own)
        self.inputs.subscribe(DISCOVERY_WAIT_S)
        outputs = sorted({name for cam in self.cameras for name in cam.outputs.topics()})
        self.node.get_logger().info(f"subscribed to {self.inputs.describe()}; publishing "
                                    f"{', '.join(outputs)}")

    def _publish_label_info(self) -> None:
        """The class map on each camera's latched ~/label_info (when vision_msgs is there)."""
        if not label_outputs.label_info_available():
            return
        class_map = self.label_map.class_map()
        for cam in self.cameras:
            header = Header(stamp=self.node.get_clock().now().to_msg())
            cam.outputs.publish_label_info(label_outputs.label_info_message(header, class_map))

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
        """Destroy the outputs, stop the worker, release the model and its memory.

        Returns at once: the outputs go here, on the executor thread (waiting at most for
        one ``publish()`` in progress); with a batch in flight the model is released by the
        worker once it has left the batch (whose results are not published).
        """
        self._unsubscribe()
        self.worker.deactivate()
        cameras, self.cameras = self.cameras, []
        for cam in cameras:
            if cam.outputs is not None:
                cam.outputs.close()
        holder = [self.slot.take()]   # the only reference: emptied before the collection
        logger = self.node.get_logger()
        self.worker.stop(lambda: release_model(holder, logger))

    def close(self) -> None:
        """Whatever state it is in: stop and release everything (idempotent), then wait for
        the batch in flight: :data:`SHUTDOWN_WAIT_S` in all, over every call."""
        if self._close_deadline is None:
            self._close_deadline = time.monotonic() + SHUTDOWN_WAIT_S
        self.cleanup()
        if not self.worker.wait_stopped(max(0.0, self._close_deadline - time.monotonic())):
            self.node.get_logger().warning(
                f"the inference thread is still in its batch after {SHUTDOWN_WAIT_S:.0f} s; "
                f"exiting without waiting for it", once=True)

    # -------------------------------------------------------------- worker side
    def _processed(self) -> None:
        with self._lock:
            self._failures = 0

    def _fail(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = reason
        self.node.get_logger().error(f"inference failed: {reason}", throttle_duration_sec=2.0)

    # -------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        array.status = self.statuses()
        self._diag_pub.publish(array)

    def statuses(self) -> List[Any]:
        """The node's /diagnostics statuses now (and one per camera of a multi-camera
        node)."""
        name = f"{self.node.get_name()}: segmentation"
        lifecycle = {"lifecycle_state": self._state_label()} if self._state_label else {}
        seg = self.slot.segmenter
        if seg is None:
            return [diagnostics.unconfigured_status(name, lifecycle, self.configure_error)]
        with self._lock:
            failing = self._last_error if self._failures >= FAILURES_FOR_ERROR else None
            errors = (self._failures, self._last_error)
        if not self.worker.alive():
            failing = "the inference thread stopped"
        failed_sizes, no_confidence = self.slot.problems()
        return diagnostics.running_statuses(
            name, self.node.get_name(), seg, self.cfg, self.cameras, self._lock,
            active=self.active, failing=failing, errors=errors, failed_sizes=failed_sizes,
            no_confidence=no_confidence, input_size=self.slot.input_size_text,
            qos=self.qos_events.counters, stages=self.stages,
            extra=dict(lifecycle, publish_overlap="always" if self.overlap else "never",
                       **({"precision_choice": self.slot.precision_choice}
                          if self.slot.precision_choice else {})))
