"""The camera side of the node benchmarks: an rclpy process that publishes frames to the
node under test and records what comes back.

It runs as a benchmark worker (:mod:`mfaranet_ros.bench.worker`), in a process of its
own, so that its DDS settings (domain, Fast DDS profile) come from the environment the
benchmark gives it and the caller's process is left alone.
"""
from __future__ import annotations

import array
import threading
import time
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ...bench.frames import street_frame
from .bench_node import ALL_OUTPUTS, OUTPUTS
from .participant import Participant

__all__ = ["OUTPUTS", "ALL_OUTPUTS", "overhead_camera", "multi_camera"]


#: How long one frame may take to come back before the run is abandoned.
FRAME_TIMEOUT_S = 30.0


def _rgb_payload(size: Sequence[int]) -> array.array:
    """The benchmark frame's bytes, converted once (rclpy copies an array.array cheaply)."""
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(street_frame(size)).reshape(-1))
    return data


def _image(data: array.array, size: Sequence[int], stamp_sec: int, frame_id: str) -> Image:
    h, w = int(size[0]), int(size[1])
    msg = Image(height=h, width=w, encoding="rgb8", step=w * 3)
    msg.header.stamp.sec = stamp_sec
    msg.header.frame_id = frame_id
    msg.data = data
    return msg


def _report_values(msg: DiagnosticArray) -> Dict[str, str]:
    return {kv.key: kv.value for kv in msg.status[0].values}


# ------------------------------------------------------------------ node overhead

class _Arrivals:
    """Arrival time and message of every output, by the frame's stamp (seconds field)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_stamp: Dict[int, Dict[str, Tuple[float, object]]] = {}

    def callback(self, name: str) -> Callable:
        def on_message(msg) -> None:
            t = time.perf_counter()
            with self._lock:
                self._by_stamp.setdefault(msg.header.stamp.sec, {})[name] = (t, msg)
        return on_message

    def wait(self, stamp: int, count: int) -> Dict[str, Tuple[float, object]]:
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        while True:
            with self._lock:
                got = dict(self._by_stamp.get(stamp, {}))
            if len(got) == count:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"frame {stamp}: outputs missing (got {sorted(got)})")
            time.sleep(0.001)


#: the stages of a frame's latency report, which add up to its ``end_to_end_ms``
STAGES = ("queue", "decode", "preprocess", "inference", "postprocess", "wait", "publish")


def _frame_timings(got: Dict[str, Tuple[float, object]], t_sent: float, stamp: int,
                   outputs: Sequence[str] = OUTPUTS) -> Dict[str, float]:
    """One frame's figures (ms) from its latency report and the arrival times."""
    report = _report_values(got["latency"][1])
    if report.get("outputs") != ",".join(outputs):
        raise RuntimeError(f"frame {stamp}: the node published {report.get('outputs')}")
    ms = {k[:-3]: float(v) for k, v in report.items() if k.endswith("_ms")}
    segmenter = ms["preprocess"] + ms["inference"] + ms["postprocess"]
    last_output = max(got[name][0] for name in outputs)
    return {"end_to_end": ms["end_to_end"], "segmenter": segmenter,
            "overhead": ms["end_to_end"] - segmenter, "decode": ms["decode"],
            "publish": ms["publish"], "queue": ms["queue"], "wait": ms["wait"],
            "unaccounted": ms["end_to_end"] - sum(ms[s] for s in STAGES),
            "round_trip": (last_output - t_sent) * 1e3}


def overhead_camera(spec: Dict, ready: Callable[[], None]) -> Dict:
    """Worker: one frame at a time to the node in namespace ``spec["ns"]``; each frame is
    sent once all outputs and the latency report of the previous one are back."""
    ns, size = spec["ns"], spec["frame_size"]
    outputs = tuple(spec.get("outputs", OUTPUTS))
    cam = Participant("mfaranet_bench_camera")
    try:
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        arrivals = _Arrivals()
        subs = [cam.node.create_subscription(
            CameraInfo if name == "camera_info" else Image, f"{ns}/mfaranet/{name}",
            arrivals.callback(name), qos) for name in outputs]
        subs.append(cam.node.create_subscription(DiagnosticArray, f"{ns}/mfaranet/latency",
                                                 arrivals.callback("latency"), qos))
        pub = cam.node.create_publisher(Image, f"{ns}/image", qos)
        info_pub = cam.node.create_publisher(CameraInfo, f"{ns}/camera_info", qos) \
            if "camera_info" in outputs else None
        cam.wait_matched([pub] + ([info_pub] if info_pub else []), subs, spec["timeout"])
        ready()
        data, frames = _rgb_payload(size), []
        h, w = int(size[0]), int(size[1])
        info = CameraInfo(height=h, width=w, k=[w, 0.0, w / 2, 0.0, w, h / 2, 0.0, 0.0, 1.0])
        if info_pub is not None:       # the node has one before the first frame
            info_pub.publish(info)
            time.sleep(0.2)
        for stamp in range(1, spec["warmup"] + spec["iterations"] + 1):
            if info_pub is not None:   # the camera's calibration with each frame, as drivers do
                info.header.stamp.sec = stamp
                info_pub.publish(info)
            t_sent = time.perf_counter()
            pub.publish(_image(data, size, stamp, "bench"))
            got = arrivals.wait(stamp, len(outputs) + 1)
            if stamp > spec["warmup"]:
                frames.append(_frame_timings(got, t_sent, stamp, outputs))
            time.sleep(0.05)   # let the node go idle: one frame in flight at a time
        return {"frames": frames}
    finally:
        cam.close()


# ------------------------------------------------------------------ several cameras

class _Window:
    """Frames counted per camera (by their latency reports) and the reports' stage times,
    while the measuring window is open."""

    def __init__(self, cameras: int) -> None:
        self._lock = threading.Lock()
        self.open = False
        self.counts = [0] * cameras
        self.latencies_ms: List[float] = []
        self.stages_ms: Dict[str, List[float]] = {}

    def callback(self, camera: int) -> Callable:
        def on_latency(msg: DiagnosticArray) -> None:
            values = _report_values(msg)
            with self._lock:
                if self.open:
                    self.counts[camera] += 1
                    self.latencies_ms.append(float(values["end_to_end_ms"]))
                    for key, value in values.items():
                        if key.endswith("_ms"):
                            self.stages_ms.setdefault(key[:-3], []).append(float(value))
        return on_latency

    def set_open(self, value: bool) -> None:
        with self._lock:
            self.open = value


def _publish_at_rate(pubs: Sequence, window: _Window, data: array.array, size, rate: float,
                     seconds: float, settle: float) -> float:
    """Publishes on every camera at ``rate`` Hz; opens the window after ``settle`` s for
    ``seconds`` s. Returns the window's length in seconds."""
    t0 = time.monotonic()
    tick, t_open = 0, None
    while True:
        now = time.monotonic()
        if t_open is None and now - t0 >= settle:
            window.set_open(True)
            t_open = now
        if t_open is not None and now - t_open >= seconds:
            window.set_open(False)
            return now - t_open
        for i, pub in enumerate(pubs):
            pub.publish(_image(data, size, tick, f"cam{i}"))
        tick += 1
        time.sleep(max(0.0, t0 + tick / rate - time.monotonic()))


def multi_camera(spec: Dict, ready: Callable[[], None]) -> Dict:
    """Worker: every camera of ``spec["layout"]`` (image topic, image output topics to
    subscribe, latency topic) at ``spec["rate"]`` Hz, faster than the model runs, so that
    the node(s) are saturated."""
    layout = spec["layout"]
    cam = Participant("mfaranet_bench_cameras")
    try:
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        window = _Window(len(layout))
        pubs, subs = [], []
        for i, (image, outputs, latency) in enumerate(layout):
            pubs.append(cam.node.create_publisher(Image, image, qos))
            subs += [cam.node.create_subscription(Image, topic, lambda _msg: None, qos)
                     for topic in outputs]
            subs.append(cam.node.create_subscription(DiagnosticArray, latency,
                                                     window.callback(i), qos))
        cam.wait_matched(pubs, subs, spec["timeout"])
        ready()
        window_s = _publish_at_rate(pubs, window, _rgb_payload(spec["frame_size"]),
                                    spec["frame_size"], spec["rate"], spec["seconds"],
                                    spec["settle"])
        return {"window_s": window_s, "per_camera_frames": window.counts,
                "latencies_ms": window.latencies_ms, "stages_ms": window.stages_ms}
    finally:
        cam.close()
