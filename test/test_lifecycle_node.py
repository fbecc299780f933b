"""The managed node over real DDS: ``segmentation_lifecycle_node`` in its own process,
driven through its lifecycle and parameter services from a test node in this one.

One node process goes through every transition in order (the tests of this module build
on each other's state); shutdown from the other states and SIGINT get processes of their
own. The checkpoint predicts "car" everywhere, so what comes back is known exactly.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition, TransitionEvent  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetAvailableStates, GetAvailableTransitions, GetState  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_helpers import (  # noqa: E402
    CAR,
    CAR_RGB,
    REPO,
    Client,
    NodeProcess,
    constant_checkpoint,
    gated_node_command,
    image_msg,
    kv,
    reliable,
    to_array,
)
from sensor_msgs.msg import Image  # noqa: E402

from mfaranet_ros.ros.parameters import PARAMETER_NAMES, PARAMETERS  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

EXECUTABLE = "segmentation_lifecycle_node"
STARTUP_S = 60.0
OUTPUTS = ("labels", "color", "overlay", "latency")


def start_managed(tmp, *ros_args, command=None) -> NodeProcess:
    return NodeProcess(tmp, "--params-file", str(REPO / "config" / "segment.yaml"),
                       "-p", "backend:=torch", *ros_args, executable=EXECUTABLE,
                       command=command)


class Lifecycle:
    """Calls the managed node's services from the test client."""

    def __init__(self, client: Client, node: NodeProcess, name: str = "/mfaranet"):
        self.client, self.node, self.name = client, node, name
        self._clients = {}

    def call(self, srv_type, service: str, request, timeout: float = 10.0):
        cli = self._clients.get(service)
        if cli is None:
            cli = self._clients[service] = self.client.node.create_client(
                srv_type, f"{self.name}/{service}")
        assert cli.wait_for_service(timeout_sec=timeout) or self.node.proc.poll() is not None, \
            service
        assert self.node.proc.poll() is None, self.node.output()
        future = cli.call_async(request)
        self.client.wait_until(future.done, timeout, service)
        return future.result()

    def change(self, label: str, timeout: float = 60.0) -> bool:
        req = ChangeState.Request(transition=Transition(label=label))
        return self.call(ChangeState, "change_state", req, timeout).success

    def state(self) -> str:
        return self.call(GetState, "get_state", GetState.Request()).current_state.label

    def transitions(self):
        res = self.call(GetAvailableTransitions, "get_available_transitions",
                        GetAvailableTransitions.Request())
        return {t.transition.label for t in res.available_transitions}

    def set(self, name: str, value):
        req = SetParameters.Request(parameters=[Parameter(name, value=value)
                                                .to_parameter_msg()])
        return self.call(SetParameters, "set_parameters", req).results[0]


# ------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return constant_checkpoint(tmp_path_factory.mktemp("lifecycle_ckpt") / "car.pth")


@pytest.fixture(scope="module")
def spares(tmp_path_factory, checkpoint):
    """More managed nodes, for shutdown from other states and SIGINT, started at once with
    the main one (start-up is the slow part) and out of its way: node ``/spares/<key>``,
    camera ``/spares/image``."""
    tmp = tmp_path_factory.mktemp("lifecycle_spares")
    # "configuring" holds its warm-up until the test is done with it (gated_segmenter_node)
    (tmp / "arm").touch()
    held = gated_node_command(tmp / "arm", tmp / "gate", tmp / "entered",
                              "segmentation_lifecycle_node")
    procs = {key: start_managed(tmp, "-r", "__ns:=/spares", "-r", f"__node:={key}",
                                "-p", f"weights:={checkpoint}", "-p", "input_size:=[64, 128]",
                                command=held if key == "configuring" else None)
             for key in ("unconfigured", "inactive", "active", "configuring")}
    procs["configuring"].entered = tmp / "entered"
    yield procs
    for proc in procs.values():
        if proc.proc.poll() is None:
            proc.interrupt()


@pytest.fixture(scope="module")
def managed(tmp_path_factory, spares):
    """Started with a missing checkpoint, an invalid input size and an overlay_alpha out of
    its range: configure must fail until all are fixed through the parameter service."""
    tmp = tmp_path_factory.mktemp("lifecycle")
    proc = start_managed(tmp, "-p", f"weights:={tmp / 'missing.pth'}", "-p", "device:=cpu",
                         "-p", "input_size:=[8, 8]", "-p", "overlay_alpha:=2.0")
    yield proc
    if proc.proc.poll() is None:
        proc.interrupt()


@pytest.fixture(scope="module")
def client(managed):
    c = Client("mfaranet_lifecycle_test")
    c.collect(DiagnosticArray, "/diagnostics", reliable(20), "diag")
    c.collect(TransitionEvent, "/mfaranet/transition_event", reliable(20), "events")
    for name in OUTPUTS:
        c.collect(Image if name != "latency" else DiagnosticArray, f"/mfaranet/{name}",
                  reliable(5), name)
    c.pub = c.node.create_publisher(Image, "/image", reliable(1))
    c.lifecycle = Lifecycle(c, managed)
    try:
        c.lifecycle.call(GetState, "get_state", GetState.Request(), STARTUP_S)
        yield c
    finally:
        c.close()


_stamp = [5000]


def send(client, shape=(48, 64)):
    """Publish one frame; its stamp."""
    _stamp[0] += 1
    stamp = (_stamp[0], 0)
    client.pub.publish(image_msg(np.full(shape + (3,), 200, np.uint8), "rgb8", stamp=stamp))
    return stamp


def outputs_for(client, stamp):
    return {k: [m for m in client.messages(k)
                if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp] for k in OUTPUTS}


def assert_segmented(client, timeout=10.0):
    """While active: a frame comes back as car labels, car colour and the overlay."""
    client.wait_until(lambda: client.pub.get_subscription_count() > 0, 10.0,
                      "the node to subscribe")
    stamp = send(client)
    client.wait_until(lambda: all(outputs_for(client, stamp).values()), timeout,
                      f"outputs for stamp {stamp}")
    out = {k: v[-1] for k, v in outputs_for(client, stamp).items()}
    assert np.all(to_array(out["labels"]) == CAR)
    assert np.all(to_array(out["color"]) == np.array(CAR_RGB, np.uint8))
    assert (out["overlay"].height, out["overlay"].width) == (48, 64)


def assert_nothing_comes_back(client, wait=1.5):
    stamp = send(client)
    time.sleep(wait)
    assert not any(outputs_for(client, stamp).values())


def diag_state(client, state, level=b"\x00", timeout=6.0, where=lambda values: True):
    """The node's newest /diagnostics status, once it reports ``state`` at ``level`` (and
    its values satisfy ``where``)."""
    def current():
        for msg in reversed(client.messages("diag")):
            for s in msg.status:
                if s.name == "mfaranet: segmentation":
                    return s
        return None
    client.wait_until(lambda: current() is not None and current().level == level
                      and kv(current()).get("lifecycle_state") == state
                      and where(kv(current())),
                      timeout, f"/diagnostics to report {state} at level {level}")
    return current()


def count_publishers(client, topic):
    return client.node.count_publishers(topic)


# --------------------------------------------------------------- the transitions

def test_starts_unconfigured_with_nothing_subscribed_or_published(managed, client):
    lc = client.lifecycle
    assert lc.state() == "unconfigured"
    assert lc.transitions() == {"configure", "shutdown"}
    states = lc.call(GetAvailableStates, "get_available_states", GetAvailableStates.Request())
    labels = {s.label for s in states.available_states}
    assert {"unconfigured", "inactive", "active", "finalized", "configuring",
            "activating", "deactivating", "cleaningup", "shuttingdown"} <= labels
    assert "waiting for configure" in diag_state(client, "unconfigured").message
    assert client.pub.get_subscription_count() == 0
    assert all(count_publishers(client, f"/mfaranet/{k}") == 0 for k in OUTPUTS)
    assert_nothing_comes_back(client)
    assert "model ready" not in managed.output()


def test_a_transition_the_state_lacks_requested_by_id_is_refused_and_the_node_goes_on(
        managed, client):
    """A lifecycle manager asks for ``activate`` by id (no label) while unconfigured: the
    answer is false, one line is logged, and the node keeps serving (Humble's and Jazzy's
    LifecycleNode would let rcl's error end the spin)."""
    lc = client.lifecycle
    req = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE))
    assert lc.call(ChangeState, "change_state", req).success is False
    assert lc.state() == "unconfigured" and managed.proc.poll() is None
    assert lc.transitions() == {"configure", "shutdown"}


def test_failing_configure_names_the_reason_and_a_fixed_parameter_configures(managed,
                                                                            client):
    lc = client.lifecycle
    assert managed.wait_for_log("invalid parameters (configure fails until they are set): ",
                                5.0)
    assert "overlay_alpha: 2.0 is outside [0.0, 1.0]" in managed.output()
    assert lc.change("configure") is False
    assert lc.state() == "unconfigured"
    assert managed.wait_for_log("configure failed: invalid parameters: ", 5.0)
    failed = next(line for line in managed.output().splitlines()
                  if "configure failed" in line)
    assert "input_size: expected [] (the checkpoint's size), [0, 0] (full resolution) or " \
           "[H, W] with both >= 32, got [8, 8]" in failed
    assert "overlay_alpha: 2.0 is outside [0.0, 1.0]" in failed
    status = diag_state(client, "unconfigured", level=b"\x02")
    assert "configure failed: invalid parameters: " in status.message

    assert lc.set("input_size", [64, 128]).successful
    refused = lc.set("label_map", "/nonexistent/map.yaml")          # refused at once
    assert not refused.successful and "/nonexistent/map.yaml" in refused.reason
    assert "cannot be read" in refused.reason
    assert not lc.set("overlay_alpha", 1.5).successful
    assert lc.set("overlay_alpha", 1).successful  # an integer for a decimal: that number
    assert lc.change("configure") is False  # now the checkpoint
    assert managed.wait_for_log("cannot load checkpoint", 5.0)
    assert "missing.pth" in managed.output() and "checkpoint not found" in managed.output()
    assert "Traceback" not in managed.output()
    assert managed.proc.poll() is None
    assert lc.set("overlay_alpha", 0.5).successful


def test_configure_loads_and_warms_up_and_publishes_nothing(managed, client, checkpoint):
    lc = client.lifecycle
    assert lc.set("weights", str(checkpoint)).successful
    assert lc.change("configure") is True
    assert lc.state() == "inactive"
    assert lc.transitions() == {"activate", "cleanup", "shutdown"}
    assert "model ready: backend torch, device cpu, input size 64x128" in managed.output()
    # the outputs exist (lifecycle publishers, inactive); no camera subscription yet
    client.wait_until(lambda: count_publishers(client, "/mfaranet/labels") == 1, 5.0,
                      "the labels publisher")
    assert client.pub.get_subscription_count() == 0
    assert_nothing_comes_back(client)
    status = diag_state(client, "inactive")
    assert kv(status)["backend"] == "torch" and "not subscribed" in status.message


def test_same_parameters_as_the_plain_node_with_descriptors(client):
    from rcl_interfaces.srv import DescribeParameters, ListParameters

    lc = client.lifecycle
    listed = lc.call(ListParameters, "list_parameters", ListParameters.Request()).result.names
    assert sorted(set(listed) - {"use_sim_time", "start_type_description_service"}) \
        == sorted(PARAMETER_NAMES)
    described = lc.call(DescribeParameters, "describe_parameters",
                        DescribeParameters.Request(names=list(PARAMETER_NAMES))).descriptors
    for spec, d in zip(PARAMETERS, described):
        assert d.description and not d.read_only, spec.name
        assert ("applied at configure" in d.additional_constraints) == spec.read_only


def test_configure_time_parameters_are_refused_while_configured(client):
    r = client.lifecycle.set("backend", "onnxruntime")
    assert not r.successful and "cleanup" in r.reason
    assert client.lifecycle.set("overlay_alpha", 0.5).successful  # acts at once


def test_activate_subscribes_and_segments(client):
    lc = client.lifecycle
    assert lc.change("activate") is True
    assert lc.state() == "active"
    assert_segmented(client)
    diag_state(client, "active", where=lambda v: int(v["frames_processed"]) >= 1)


def test_deactivate_stops_and_reactivation_is_immediate(managed, client):
    lc = client.lifecycle
    assert lc.change("deactivate") is True
    assert lc.state() == "inactive"
    client.wait_until(lambda: client.pub.get_subscription_count() == 0, 5.0,
                      "the camera subscription to go")
    assert_nothing_comes_back(client)
    t0 = time.monotonic()
    assert lc.change("activate") is True
    reactivate_s = time.monotonic() - t0
    assert reactivate_s < 2.0, reactivate_s  # no reload, no warm-up
    assert managed.output().count("model ready") == 1
    assert_segmented(client)


def test_pending_frames_are_dropped_on_deactivate(client):
    """A burst then deactivate: the core counts every frame it did not publish as dropped,
    never as processed. The lifecycle publishers' own silence once inactive would hide a
    frame the core processed after deactivate, so the core's processed count is checked
    against the label images that really came out."""
    def counts():
        for msg in reversed(client.messages("diag")):
            for st in msg.status:
                if st.name == "mfaranet: segmentation":
                    v = kv(st)
                    return v.get("lifecycle_state"), {k: int(v[f"frames_{k}"]) for k in (
                        "received", "processed", "dropped", "rejected")}
        return None, None

    def settled(state):
        s, c = counts()
        return s == state and c["received"] == c["processed"] + c["dropped"] + c["rejected"]
    client.clear("diag", *OUTPUTS)
    client.wait_until(lambda: settled("active"), 10.0, "a settled /diagnostics status")
    before = counts()[1]
    for _ in range(5):
        send(client, (480, 640))
    # a depth-1 writer may replace frames before they leave: at least one arrives
    client.wait_until(lambda: counts()[1]["received"] > before["received"], 10.0,
                      "the node to receive the burst")
    assert client.lifecycle.change("deactivate") is True
    client.wait_until(lambda: settled("inactive"), 10.0,
                      "every received frame processed, dropped or rejected")
    time.sleep(1.0)   # anything still on its way arrives
    after = counts()[1]
    labels = len(client.messages("labels"))
    assert after["processed"] - before["processed"] == labels, (before, after, labels)
    client.clear(*OUTPUTS)
    time.sleep(1.0)
    assert not any(client.messages(k) for k in OUTPUTS)


def test_cleanup_releases_the_model_and_configure_loads_it_again(managed, client):
    lc = client.lifecycle
    assert lc.change("cleanup") is True
    assert lc.state() == "unconfigured"
    assert managed.wait_for_log("model released", 5.0)
    client.wait_until(lambda: count_publishers(client, "/mfaranet/labels") == 0, 5.0,
                      "the outputs to go")
    diag_state(client, "unconfigured")
    assert_nothing_comes_back(client, wait=0.5)
    assert lc.change("configure") is True
    assert managed.output().count("model ready") == 2
    assert lc.change("activate") is True
    assert_segmented(client)


def test_every_transition_was_announced(client):
    goals = [(e.start_state.label, e.goal_state.label) for e in client.messages("events")]
    assert goals == [
        ("unconfigured", "configuring"), ("configuring", "unconfigured"),  # failed: params
        ("unconfigured", "configuring"), ("configuring", "unconfigured"),  # failed: weights
        ("unconfigured", "configuring"), ("configuring", "inactive"),
        ("inactive", "activating"), ("activating", "active"),
        ("active", "deactivating"), ("deactivating", "inactive"),
        ("inactive", "activating"), ("activating", "active"),
        ("active", "deactivating"), ("deactivating", "inactive"),
        ("inactive", "cleaningup"), ("cleaningup", "unconfigured"),
        ("unconfigured", "configuring"), ("configuring", "inactive"),
        ("inactive", "activating"), ("activating", "active"),
    ]


def test_shutdown_from_active_exits_cleanly(managed, client):
    assert client.lifecycle.change("shutdown") is True
    assert managed.proc.wait(15) == 0, managed.output()
    assert "shutdown from active" in managed.output()
    assert "Traceback" not in managed.output()


# ------------------------------------------------- shutdown from the other states, SIGINT

@pytest.mark.parametrize("state", ["unconfigured", "inactive"])
def test_shutdown_from_any_state_exits_cleanly(client, spares, state):
    proc = spares[state]
    lc = Lifecycle(client, proc, f"/spares/{state}")
    lc.call(GetState, "get_state", GetState.Request(), STARTUP_S)
    if state == "inactive":
        assert lc.change("configure") is True
    assert lc.state() == state
    assert lc.change("shutdown") is True
    assert proc.proc.wait(15) == 0, proc.output()
    assert f"shutdown from {state}" in proc.output()
    assert "Traceback" not in proc.output()


def test_sigint_while_active_exits_cleanly(client, spares):
    proc = spares["active"]
    lc = Lifecycle(client, proc, "/spares/active")
    lc.call(GetState, "get_state", GetState.Request(), STARTUP_S)
    assert lc.change("configure") is True and lc.change("activate") is True
    assert proc.wait_for_log("subscribed to /spares/image", 5.0)
    assert proc.interrupt() == 0, proc.output()
    assert "shutdown from active" in proc.output()  # the transition, as a manager would
    assert "Traceback" not in proc.output()


def test_sigint_during_configure_exits_cleanly(client, spares):
    """Ctrl-C while configure loads and warms up the model: exit 0, no traceback."""
    proc = spares["configuring"]
    lc = Lifecycle(client, proc, "/spares/configuring")
    lc.call(GetState, "get_state", GetState.Request(), STARTUP_S)
    cli = client.node.create_client(
        ChangeState, "/spares/configuring/change_state")
    assert cli.wait_for_service(timeout_sec=10.0)
    cli.call_async(ChangeState.Request(transition=Transition(label="configure")))
    client.wait_until(proc.entered.exists, 60.0, "configure to reach the warm-up")
    assert proc.interrupt() == 0, proc.output()   # held there: the signal lands inside
    out = proc.output()
    assert "Traceback" not in out and "model ready" not in out


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_cleanup_drops_every_reference_to_the_model(checkpoint, device):
    """In this process (the transitions called directly, no spinning): after cleanup the
    Segmenter and its backend are garbage, so their memory really goes (on a GPU: back to
    what was allocated and reserved before configure); a second configure builds a new
    one."""
    import gc
    import weakref

    import rclpy
    import torch
    from rclpy.context import Context
    from rclpy.lifecycle import TransitionCallbackReturn

    from mfaranet_ros.ros.lifecycle_node import SegmentationLifecycleNode

    def gpu_memory():
        if device != "cuda":
            return (0, 0)
        torch.cuda.synchronize()
        return (torch.cuda.memory_allocated(), torch.cuda.memory_reserved())

    context = Context()
    rclpy.init(context=context, args=["--ros-args", "-r", "__ns:=/in_process"])
    node = SegmentationLifecycleNode(context=context, parameter_overrides=[
        Parameter("weights", value=str(checkpoint)), Parameter("backend", value="torch"),
        Parameter("device", value=device), Parameter("input_size", value=[64, 128])])
    try:
        ok = TransitionCallbackReturn.SUCCESS
        before = gpu_memory()
        assert node.trigger_configure() == ok and node.trigger_activate() == ok
        loaded = gpu_memory()
        segmenter = weakref.ref(node.core.segmenter)
        backend = weakref.ref(node.core.segmenter.backend)
        assert node.trigger_deactivate() == ok and node.trigger_cleanup() == ok
        gc.collect()
        assert segmenter() is None and backend() is None
        if device == "cuda":  # allocated and reserved (the cache emptied) are back, within
            after = gpu_memory()  # what libraries keep (a cuBLAS workspace: a few MiB)
            slack = 16 * 2**20
            assert loaded[0] - before[0] > slack  # the weights alone are ~50 MB
            assert after[0] <= before[0] + slack and after[1] <= before[1] + slack
        assert node.core.segmenter is None and node.state_label() == "unconfigured"
        assert node.trigger_configure() == ok and node.core.segmenter is not None
        assert node.trigger_shutdown() == ok and node.core.segmenter is None
        assert node.finished and node.state_label() == "finalized"
    finally:
        node.destroy_node()
        context.try_shutdown()


def _block_segment(seg, gate, entered):
    """``seg.segment`` waits for ``gate``; the only references to ``seg`` this adds are its
    own (a cycle the collection clears)."""
    original = seg.segment

    def blocked(*args, **kwargs):
        entered.set()
        assert gate.wait(10.0)
        return original(*args, **kwargs)
    seg.segment = blocked


@pytest.mark.parametrize("batch_in_flight", [False, True])
def test_the_model_is_dead_before_memory_is_returned(checkpoint, monkeypatch,
                                                     batch_in_flight):
    """On the CPU, where it matters on a GPU: when cleanup collects garbage and empties
    the CUDA cache (``return_device_memory``), no reference to the Segmenter survives
    anywhere (a caller's local included), and "model released" is logged only after. With a
    batch in flight the release runs in the worker, once it has left the batch."""
    import gc
    import threading
    import weakref

    import rclpy
    from rclpy.context import Context
    from rclpy.lifecycle import TransitionCallbackReturn

    from mfaranet_ros.ros import model_slot
    from mfaranet_ros.ros.lifecycle_node import SegmentationLifecycleNode

    seen = []

    def check_then_return(device):
        gc.collect()
        seen.append((segmenter() is None, backend() is None, device))
    monkeypatch.setattr(model_slot, "return_device_memory", check_then_return)
    gate, entered = threading.Event(), threading.Event()
    context = Context()
    rclpy.init(context=context, args=["--ros-args", "-r", "__ns:=/release_order"])
    node = SegmentationLifecycleNode(context=context, parameter_overrides=[
        Parameter("weights", value=str(checkpoint)), Parameter("backend", value="torch"),
        Parameter("device", value="cpu"), Parameter("input_size", value=[64, 128])])
    try:
        ok = TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == ok and node.trigger_activate() == ok
        seg = node.core.segmenter
        segmenter, backend = weakref.ref(seg), weakref.ref(seg.backend)
        if batch_in_flight:   # the worker is inside a batch when cleanup comes
            _block_segment(seg, gate, entered)   # no reference in this frame
            cam = node.core.cameras[0]
            node.core.worker.offer(cam, image_msg(np.zeros((48, 64, 3), np.uint8), "rgb8"))
            assert entered.wait(10.0)
        del seg
        assert node.trigger_deactivate() == ok and node.trigger_cleanup() == ok
        if batch_in_flight:
            assert seen == []           # the worker still uses the model
            gate.set()
            assert node.core.worker.wait_stopped(10.0)
        assert seen == [(True, True, "cpu")]
    finally:
        gate.set()
        node.destroy_node()
        context.try_shutdown()
