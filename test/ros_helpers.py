"""Shared helpers of the ROS tests: predictable checkpoints, the node in its own process,
a test-side rclpy node that publishes frames and collects what comes back.

Everything is real: DDS between two processes, the node's console-script entry point,
the Segmenter on a real (if tiny) MFARANet checkpoint.
"""
from __future__ import annotations

import array
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# One DDS domain per test session (scripts/test.sh sets one; fall back to a random one), so
# parallel runs on this shared host do not see each other. Set before any rclpy.init.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 199)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

from mfaranet_ros.ros.tools.participant import Participant  # noqa: E402  (the client's base)

#: the class a constant checkpoint predicts everywhere, and its Cityscapes colour
CAR = 13
CAR_RGB = (0, 0, 142)


def constant_checkpoint(path: Path, class_index: int = CAR,
                        input_size: Optional[Sequence[int]] = (64, 128)) -> Path:
    """A 19-class MFARANet that predicts ``class_index`` at every pixel.

    The classifiers' weights are zero and their biases favour the class; the fusion's
    attention logits are zero (sigmoid 0.5 for every scale), so the fused scores are the
    same bias vector everywhere, whatever the input. The rest is randomly initialised.
    """
    import torch

    from mfaranet_ros.model import MFARANet, cityscapes_metadata, save_checkpoint

    torch.manual_seed(0)
    model = MFARANet(19)
    with torch.no_grad():
        for conv in model.heads.classifiers.values():
            conv.weight.zero_()
            conv.bias.fill_(-4.0)
            conv.bias[class_index] = 4.0
        for head in model.fusion.attention.values():
            head[-2].weight.zero_()  # the last 1x1 conv before the sigmoid
    save_checkpoint(path, model, cityscapes_metadata(
        source=f"test: constant class {class_index}", input_size=input_size))
    return path


#: console script -> the module whose ``main`` it runs
NODE_MODULES = {"segmentation_node": "mfaranet_ros.ros.node",
                "segmentation_lifecycle_node": "mfaranet_ros.ros.lifecycle_node"}


def node_command(*ros_args: str, executable: str = "segmentation_node") -> List[str]:
    """The node's console script when installed beside this Python, else the module it
    runs (the same ``main``)."""
    script = Path(sys.executable).parent / executable
    if script.is_file():
        return [str(script), "--ros-args", *ros_args]
    return [sys.executable, "-m", NODE_MODULES[executable], "--ros-args", *ros_args]


def gated_node_command(arm: Path, gate: Path, entered: Path, node: str) -> List[str]:
    """The node ``node`` with a Segmenter held inside ``segment`` once ``arm`` exists, until
    ``gate`` exists (``test/gated_segmenter_node.py``); ``entered`` appears when it is."""
    return [sys.executable, str(Path(__file__).with_name("gated_segmenter_node.py")),
            str(arm), str(gate), str(entered), node]


def humble_emulation_env() -> Dict[str, str]:
    """The environment that makes a node process's rclpy look like Humble's
    (``test/humble_emulation/sitecustomize.py``)."""
    shim = str(Path(__file__).resolve().parent / "humble_emulation")
    path = os.pathsep.join(p for p in (shim, os.environ.get("PYTHONPATH", "")) if p)
    return {"MFARANET_EMULATE_HUMBLE": "1", "PYTHONPATH": path}


class NodeProcess:
    """The segmentation node in its own process, its output captured to a file."""

    def __init__(self, tmp: Path, *ros_args: str, env: Optional[Dict[str, str]] = None,
                 executable: str = "segmentation_node", command: Optional[List[str]] = None):
        """``command``: what runs instead of the console script (``ros_args`` follow it)."""
        self.log_path = tmp / f"node-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0",
                        OMP_NUM_THREADS="1")
        # An in-process test (the live replay) may have set the profile variable in this
        # process; the node starts with the user's choice only: what the test passes.
        full_env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        full_env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
        if os.environ.get("MFARANET_TEST_EMULATE") == "humble":   # every node, as on Humble
            full_env.update(humble_emulation_env())
        full_env.update(env or {})
        argv = [*command, "--ros-args", *ros_args] if command else \
            node_command(*ros_args, executable=executable)
        self.proc = subprocess.Popen(argv,
                                     stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
                                     cwd=str(REPO))

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return True
            if self.proc.poll() is not None:
                return needle in self.output()
            time.sleep(0.1)
        return False

    def interrupt(self, timeout: float = 15.0) -> int:
        """SIGINT, as Ctrl-C or ``ros2 launch`` send it; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"node did not exit {timeout}s after SIGINT:\n{self.output()}") from None
        finally:
            self._log.close()


def image_msg(pixels: np.ndarray, encoding: str, *, stamp=(0, 0), frame_id: str = "cam",
              pad: int = 0):
    """A sensor_msgs/Image of ``pixels`` (H, W[, C]) packed as given, rows padded."""
    from sensor_msgs.msg import Image

    h, w = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(h, -1)
    if pad:
        rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    m = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=rows.shape[1])
    m.header.stamp.sec, m.header.stamp.nanosec = stamp
    m.header.frame_id = frame_id
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(rows).reshape(-1))
    m.data = data
    return m


def to_array(msg) -> np.ndarray:
    """An output Image (mono8 / rgb8, unpadded) as an array."""
    channels = {"mono8": 1, "rgb8": 3}[msg.encoding]
    a = np.frombuffer(msg.data, np.uint8)
    assert msg.step == msg.width * channels, (msg.step, msg.width)
    return a.reshape(msg.height, msg.width, channels).squeeze(-1) if channels == 1 else \
        a.reshape(msg.height, msg.width, 3)


def kv(status) -> Dict[str, str]:
    return {v.key: v.value for v in status.values}


class Client(Participant):
    """A test-side rclpy node in its own context, spun in a background thread, that
    collects what it subscribes to."""

    def __init__(self, name: str = "mfaranet_test_client"):
        self.lock = threading.Lock()
        self.received: Dict[str, list] = {}
        super().__init__(name)

    def collect(self, msg_type, topic: str, qos, key: Optional[str] = None):
        key = key or topic
        with self.lock:
            self.received.setdefault(key, [])

        def cb(msg, key=key):
            with self.lock:
                self.received[key].append((time.monotonic(), msg))
        return self.node.create_subscription(msg_type, topic, cb, qos)

    def messages(self, key: str) -> list:
        with self.lock:
            return [m for _, m in self.received.get(key, [])]

    def clear(self, *keys: str) -> None:
        with self.lock:
            for k in keys or list(self.received):
                self.received[k] = []

    def wait_until(self, predicate: Callable[[], bool], timeout: float,
                   what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def wait_for_node(self, pub, node: "NodeProcess", timeout: float = 60.0) -> None:
        """Waits until the node process subscribes to ``pub``, and for a reliable ``pub``
        until that subscription is reliable too: a camera that appears after the node's
        discovery wait is first subscribed best effort and re-subscribed reliable half a
        second later, and a frame sent in between can be lost. Fails with the node's log
        if it died."""
        from rclpy.qos import ReliabilityPolicy

        topic = pub.topic_name

        def ready():
            if node.proc.poll() is not None:
                return True
            if pub.get_subscription_count() == 0:
                return False
            if pub.qos_profile.reliability != ReliabilityPolicy.RELIABLE:
                return True
            subs = self.node.get_subscriptions_info_by_topic(topic)
            return bool(subs) and all(
                s.qos_profile.reliability == ReliabilityPolicy.RELIABLE for s in subs)
        self.wait_until(ready, timeout, "the node to subscribe")
        assert node.proc.poll() is None, node.output()


@contextlib.contextmanager
def in_process_node(name: str) -> Iterator:
    """A node named ``name`` in namespace ``/name``, in a context of its own in this process,
    not spun (for tests that drive the node's core directly)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, args=["--ros-args", "-r", f"__ns:=/{name}"])
    node = rclpy.create_node(name, context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        context.try_shutdown()


def reliable(depth: int = 5):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE)


def best_effort(depth: int = 5):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.BEST_EFFORT)
