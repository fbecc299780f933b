"""The core's batch path with a test-double Segmenter (the core, its model slot, batch
pipeline, outputs and worker are the parts under test), in this process, no spinning: a
failing size is remembered per backend/precision and size, a confidence variant that
cannot be built costs no frame and is tried once, a refused frame rejects only its camera,
counters add up, deactivate and cleanup during a blocked batch return at once and the
outputs are destroyed on the calling (executor) thread."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from ros_helpers import image_msg, in_process_node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from mfaranet_ros.labelmap import identity_label_map  # noqa: E402
from mfaranet_ros.ros.core import SegmentationCore  # noqa: E402
from mfaranet_ros.ros.parameters import NodeConfig  # noqa: E402

WAIT = 10.0
BAD_BUILD = (40, 56)  # a frame size whose artifact build fails
REFUSED_WIDTH = 33    # frames this wide are refused by segment()


class DoubleSegmenter:
    """Full resolution, the Segmenter's interface; ``gate`` blocks segment() when clear."""

    input_size = None
    backend_name, precision, device = "tensorrt", "fp16", "cpu"

    def __init__(self, confidence_fails=False):
        self.prepared = []             # (batch, h, w) of every labels build
        self.confidence_builds = []    # (batch, h, w) of every confidence build
        self.confidence_fails = confidence_fails
        self.calls = []                # the confidence flag of every segment call
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.backend = SimpleNamespace(prepare=self._prepare)

    def _prepare(self, batch, h, w, confidence=False):
        if confidence:
            self.confidence_builds.append((batch, h, w))
            if self.confidence_fails:
                raise RuntimeError("no int8 artifact with confidence")
            return
        self.prepared.append((batch, h, w))
        if (h, w) == BAD_BUILD:
            raise RuntimeError("engine build failed")

    def network_shape(self, shape):
        return int(shape[0]), int(shape[1])

    def segment(self, frame, **kw):
        self.calls.append(kw.get("confidence", False))
        self.entered.set()
        assert self.gate.wait(WAIT)
        if frame.shape[1] == REFUSED_WIDTH:
            raise ValueError("frame refused")
        h, w = frame.shape[:2]
        return SimpleNamespace(labels=np.zeros((h, w), np.uint8), color=None, overlay=None,
                               confidence=(np.full((h, w), 0.5, np.float32)
                                           if kw.get("confidence") else None), timings={})

    def segment_batch(self, frames, **kw):
        return [self.segment(f, **kw) for f in frames]


@pytest.fixture
def node():
    with in_process_node("core_worker_test") as n:
        yield n


def started_core(node, cameras=(), seg=None):
    destroyed = []

    def destroy(pub):
        destroyed.append(threading.current_thread().name)
        node.destroy_publisher(pub)
    core = SegmentationCore(node, node.create_publisher, destroy)
    core.destroyed = destroyed
    core.cfg = NodeConfig(cameras=list(cameras), device="cpu")
    seg = core.slot.segmenter = seg or DoubleSegmenter()
    core.slot.max_batch = max(1, len(cameras))
    core._create_outputs(core.cfg)
    core.label_map = identity_label_map(["road", "car"], [(128, 64, 128), (0, 0, 142)])
    core._start_worker(core.cfg)
    core.worker.activate()
    return core, seg


def frame(shape):
    return image_msg(np.full(shape + (3,), 100, np.uint8), "rgb8")


def settle(core):
    deadline = time.monotonic() + WAIT
    while any(core.worker.in_flight(c) for c in core.cameras):
        assert time.monotonic() < deadline
        time.sleep(0.005)


def adds_up(core, cam):
    received, accounted = core.worker.balance(cam)
    return received == accounted


def test_a_failed_size_is_not_built_again_and_a_new_size_clears_it(node):
    core, seg = started_core(node)
    cam = core.cameras[0]
    for _ in range(3):
        core.worker.offer(cam, frame(BAD_BUILD))
        settle(core)
    assert seg.prepared == [(1, *BAD_BUILD)]  # built once, not for every frame
    assert cam.counters.rejected == 3
    assert "engine build failed" in cam.counters.last_reject_reason
    values = {kv.key: kv.value for kv in core.statuses()[0].values}
    assert "tensorrt fp16 cannot run 40x56" in values["failed_sizes"]
    assert values["precision"] == "fp16"  # what runs, from the Segmenter
    core.worker.offer(cam, frame((48, 64)))  # the camera changes size: the failure goes
    settle(core)
    assert cam.counters.processed == 1 and core.slot.problems() == ("", "")
    core.worker.offer(cam, frame(BAD_BUILD))  # ... so the old size is tried once more
    settle(core)
    assert seg.prepared.count((1, *BAD_BUILD)) == 2
    assert adds_up(core, cam)
    core.close()


def test_a_refused_frame_in_a_batch_rejects_only_its_camera(node):
    core, seg = started_core(node, cameras=("a", "b"))
    a, b = core.cameras
    seg.gate.clear()
    core.worker.offer(a, frame((48, 64)))
    assert seg.entered.wait(WAIT)
    core.worker.offer(a, frame((48, 64)))  # both wait behind the first batch
    core.worker.offer(b, frame((48, REFUSED_WIDTH)))
    seg.gate.set()
    settle(core)
    assert (a.counters.processed, a.counters.rejected) == (2, 0)
    assert (b.counters.processed, b.counters.rejected) == (0, 1)
    assert "frame refused" in b.counters.last_reject_reason
    assert adds_up(core, a) and adds_up(core, b)
    core.close()


@pytest.mark.parametrize("transition", ["deactivate", "cleanup"])
def test_a_transition_during_a_batch_returns_at_once(node, transition):
    core, seg = started_core(node)
    cam = core.cameras[0]
    seg.gate.clear()
    core.worker.offer(cam, frame((48, 64)))
    assert seg.entered.wait(WAIT)
    t0 = time.monotonic()
    n_outputs = len(cam.outputs.pubs)
    getattr(core, transition)()
    assert time.monotonic() - t0 < 0.5  # the batch is still blocked
    assert core.worker.busy()
    if transition == "cleanup":  # the outputs go at once, on this (the executor's) thread
        assert core.segmenter is None
        assert core.destroyed == [threading.current_thread().name] * n_outputs
    seg.gate.set()
    settle(core)
    if transition == "cleanup":  # the model: released by the worker, once out of its batch
        assert core.worker.wait_stopped(WAIT)
        assert "mfaranet-inference" not in core.destroyed
    assert cam.counters.processed == 0 and cam.counters.dropped == 1  # not published
    core.close()


def test_no_confidence_variant_costs_no_frame_and_is_tried_once(node):
    """A subscriber on ~/confidence while the confidence variant cannot be built: every
    frame still gets its labels, the build is tried once per size (not per frame), and
    /diagnostics says WARN with the reason and the fix, never ERROR."""
    core, seg = started_core(node, seg=DoubleSegmenter(confidence_fails=True))
    cam = core.cameras[0]
    listener = node.create_subscription(Image, cam.outputs.pubs["confidence"].topic_name,
                                        lambda m: None, 1)
    try:
        assert cam.outputs.wanted(core.settings.enabled)["confidence"]
        for _ in range(3):
            core.worker.offer(cam, frame((48, 64)))
            settle(core)
        assert cam.counters.processed == 3 and cam.counters.rejected == 0
        assert seg.confidence_builds == [(1, 48, 64)]       # once, not per frame
        assert seg.calls == [False, False, False]            # never asked of the model
        status = core.statuses()[0]
        values = {kv.key: kv.value for kv in status.values}
        assert status.level == DiagnosticStatus.WARN
        assert "no int8 artifact with confidence" in status.message
        assert values["confidence"].startswith("off: ~/confidence is off for 48x64 frames")
        assert "--confidence" in values["confidence"]
    finally:
        node.destroy_subscription(listener)
        core.close()


def test_close_waits_once_in_all(node, monkeypatch):
    """close() twice during a batch that never ends (a build): one bounded wait, not two."""
    from mfaranet_ros.ros import core as core_module

    monkeypatch.setattr(core_module, "SHUTDOWN_WAIT_S", 0.6)
    core, seg = started_core(node)
    seg.gate.clear()
    core.worker.offer(core.cameras[0], frame((48, 64)))
    assert seg.entered.wait(WAIT)
    t0 = time.monotonic()
    core.close()
    core.close()   # the managed node's shutdown transition, then its exit
    assert 0.5 < time.monotonic() - t0 < 1.5
    seg.gate.set()
    assert core.worker.wait_stopped(WAIT)
