"""The core's batch path with a test-double Segmenter (the core and its worker are the
parts under test), in this process, no spinning: a failing size is remembered per
backend/precision and size, a refused frame rejects only its camera, counters add up,
deactivate and cleanup during a blocked batch return at once."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from ros_helpers import image_msg  # noqa: E402

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

    def __init__(self):
        self.prepared = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.backend = SimpleNamespace(prepare=self._prepare)

    def _prepare(self, batch, h, w):
        self.prepared.append((batch, h, w))
        if (h, w) == BAD_BUILD:
            raise RuntimeError("engine build failed")

    def network_shape(self, shape):
        return int(shape[0]), int(shape[1])

    def segment(self, frame, **kw):
        self.entered.set()
        assert self.gate.wait(WAIT)
        if frame.shape[1] == REFUSED_WIDTH:
            raise ValueError("frame refused")
        h, w = frame.shape[:2]
        return SimpleNamespace(labels=np.zeros((h, w), np.uint8), color=None, overlay=None,
                               timings={})

    def segment_batch(self, frames, **kw):
        return [self.segment(f, **kw) for f in frames]


@pytest.fixture
def node():
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, args=["--ros-args", "-r", "__ns:=/core_worker_test"])
    n = rclpy.create_node("core_worker_test", context=context)
    yield n
    n.destroy_node()
    context.try_shutdown()


def started_core(node, cameras=()):
    destroyed = []

    def destroy(pub):
        destroyed.append(threading.current_thread().name)
        node.destroy_publisher(pub)
    core = SegmentationCore(node, node.create_publisher, destroy)
    core.destroyed = destroyed
    core.cfg = NodeConfig(cameras=list(cameras), device="cpu")
    core._create_outputs(core.cfg)
    seg = core.segmenter = DoubleSegmenter()
    core.label_map = identity_label_map(["road", "car"], [(128, 64, 128), (0, 0, 142)])
    core.worker.start(core.cameras, lambda b, p, a: core._process(seg, b, p, a))
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
    c = cam.counters
    return c.received == c.processed + c.dropped + c.rejected + core.worker.in_flight(cam)


def test_a_failed_size_is_not_built_again_and_a_new_size_clears_it(node):
    core, seg = started_core(node)
    cam = core.cameras[0]
    for _ in range(3):
        core._on_image(cam, frame(BAD_BUILD))
        settle(core)
    assert seg.prepared == [(1, *BAD_BUILD)]  # built once, not for every frame
    assert cam.counters.rejected == 3
    assert "engine build failed" in cam.counters.last_reject_reason
    statuses = core._running_statuses(time.monotonic())
    values = {kv.key: kv.value for kv in statuses[0].values}
    assert "tensorrt fp16 cannot run 40x56" in values["failed_sizes"]
    assert values["precision"] == "fp16"  # what runs, from the Segmenter
    core._on_image(cam, frame((48, 64)))  # the camera changes size: the failure goes
    settle(core)
    assert cam.counters.processed == 1 and core._failed_sizes == {}
    core._on_image(cam, frame(BAD_BUILD))  # ... so the old size is tried once more
    settle(core)
    assert seg.prepared.count((1, *BAD_BUILD)) == 2
    assert adds_up(core, cam)
    core.close()


def test_a_refused_frame_in_a_batch_rejects_only_its_camera(node):
    core, seg = started_core(node, cameras=("a", "b"))
    a, b = core.cameras
    seg.gate.clear()
    core._on_image(a, frame((48, 64)))
    assert seg.entered.wait(WAIT)
    core._on_image(a, frame((48, 64)))  # both wait behind the first batch
    core._on_image(b, frame((48, REFUSED_WIDTH)))
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
    core._on_image(cam, frame((48, 64)))
    assert seg.entered.wait(WAIT)
    t0 = time.monotonic()
    getattr(core, transition)()
    assert time.monotonic() - t0 < 0.5  # the batch is still blocked
    assert core.worker.busy()
    if transition == "cleanup":
        assert core.segmenter is None and core.destroyed == []  # outputs still in use
    seg.gate.set()
    settle(core)
    if transition == "cleanup":  # released by the worker, once out of its batch
        assert core.worker.wait_stopped(WAIT)
        assert core.destroyed == ["mfaranet-inference"] * len(cam.pubs)  # every output
    assert cam.counters.processed == 0 and cam.counters.dropped == 1  # not published
    core.close()
