"""20 lifecycle cycles on the managed node in its own process, over real DDS, a camera
publishing at 30 Hz throughout: configure -> activate -> frames -> deactivate -> cleanup.

Every transition but configure (which loads and warms the model) answers within 1 s; the
node's thread count comes back to its value after the first cycle (which starts torch's
and the middleware's long-lived threads) and resident memory grows by less than 50 MB.
Cheap on purpose: a tiny checkpoint, 48x64 frames, a 64x128 network input, the CPU.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from lifecycle_msgs.srv import GetState  # noqa: E402
from ros_helpers import Client, constant_checkpoint, image_msg, reliable  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from test_lifecycle_node import STARTUP_S, Lifecycle, start_managed  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CYCLES = 20
ANSWER_S = 1.0  # every transition but configure
RSS_GROWTH_MB = 50.0


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Camera:
    """Publishes a 48x64 frame at 30 Hz from its own thread until stopped."""

    def __init__(self, client: Client):
        self.pub = client.node.create_publisher(Image, "/image", reliable(1))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        frame = np.full((48, 64, 3), 200, np.uint8)
        n = 0
        while not self._stop.wait(1 / 30):
            n += 1
            self.pub.publish(image_msg(frame, "rgb8", stamp=(n, 0)))

    def stop(self):
        self._stop.set()
        self._thread.join(2.0)


@pytest.fixture(scope="module")
def managed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cycles")
    weights = constant_checkpoint(tmp / "car.pth")
    proc = start_managed(tmp, "-p", f"weights:={weights}", "-p", "input_size:=[64, 128]",
                         "-p", "device:=cpu")
    yield proc
    if proc.proc.poll() is None:
        proc.interrupt()


def test_twenty_cycles_answer_in_time_and_leave_no_thread_or_memory_behind(managed):
    client = Client("mfaranet_cycles_test")
    client.collect(Image, "/mfaranet/labels", reliable(5), "labels")
    lc = Lifecycle(client, managed)
    camera = Camera(client)
    pid = managed.proc.pid
    took = {"activate": [], "deactivate": [], "cleanup": []}

    def timed(label):
        t0 = time.monotonic()
        assert lc.change(label) is True, managed.output()[-3000:]
        took[label].append(time.monotonic() - t0)

    def settled_threads(target, timeout=10.0):
        """The thread count once it reaches ``target`` (the worker ends after cleanup's
        answer), or what it is after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc_status(pid, "Threads") == target:
                break
            time.sleep(0.05)
        return proc_status(pid, "Threads")

    try:
        lc.call(GetState, "get_state", GetState.Request(), STARTUP_S)  # the node is up
        threads, rss_kb = [], []
        for cycle in range(CYCLES):
            assert lc.change("configure", STARTUP_S) is True, managed.output()[-3000:]
            client.clear("labels")
            timed("activate")
            client.wait_until(lambda: len(client.messages("labels")) >= 3, 20.0,
                              f"segmented frames in cycle {cycle + 1}")
            timed("deactivate")
            timed("cleanup")
            expected = threads[0] if threads else proc_status(pid, "Threads")
            time.sleep(0.2 if threads else 1.0)
            threads.append(settled_threads(expected))
            rss_kb.append(proc_status(pid, "VmRSS"))
    finally:
        camera.stop()
        client.close()
    worst = {k: max(v) for k, v in took.items()}
    growth_mb = (max(rss_kb) - rss_kb[0]) / 1024
    print(f"\n{CYCLES} cycles: slowest answer {worst} s (bound {ANSWER_S} s); threads "
          f"after each cleanup {threads}; RSS {rss_kb[0] / 1024:.0f} MB after cycle 1, "
          f"growth {growth_mb:.1f} MB")
    assert all(s < ANSWER_S for s in worst.values()), worst
    assert threads == [threads[0]] * CYCLES, threads
    assert growth_mb < RSS_GROWTH_MB, rss_kb
