"""Node overhead across processes (issue 4 section 6).

The node runs in its own process (its console-script entry point); this process is the
camera: it publishes one frame, waits until labels, color, overlay and the latency report
of that frame are back, and publishes the next. The node's overhead per frame is its own
end-to-end time (receipt -> all three outputs published) minus the Segmenter's time
(preprocess + inference + postprocess), read from the frame's ``~/latency`` report.
The round trip seen by the camera process (publish -> last output received) is reported
too, for context: it adds both DDS transfers and this process's own receive cost.
"""
from __future__ import annotations

import array
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["bench_node", "format_report"]

OUTPUTS = ("labels", "color", "overlay")


def _random_checkpoint(folder: str) -> str:
    import torch

    from mfaranet_ros.model import MFARANet, cityscapes_metadata, save_checkpoint

    torch.manual_seed(0)
    path = os.path.join(folder, "bench_random19.pth")
    save_checkpoint(path, MFARANet(19), cityscapes_metadata(source="bench: random init"))
    return path


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if values else float("nan")


def bench_node(weights: Optional[str] = None, *, backend: str = "torch",
               input_size: Optional[Sequence[int]] = (256, 512), height: int = 1024,
               width: int = 2048, frames: int = 30, warmup: int = 5,
               camera_profile: bool = True, timeout: float = 120.0,
               log=print) -> Dict[str, object]:
    """Measure the node's overhead; returns the figures (milliseconds) and conditions."""
    from mfaranet_ros.ros.qos import apply_fastdds_profile

    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 199)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if camera_profile:
        # the camera-side fix from the README: this process publishes 6 MB frames
        apply_fastdds_profile()

    tmp = tempfile.TemporaryDirectory(prefix="mfaranet_bench_")
    if weights is None:
        weights = _random_checkpoint(tmp.name)
    ns = f"/mfaranet_bench_{os.getpid()}"
    cmd = [sys.executable, "-m", "mfaranet_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}",
           "-p", f"weights:={weights}", "-p", f"backend:={backend}"]
    if input_size:
        cmd += ["-p", f"input_size:=[{int(input_size[0])}, {int(input_size[1])}]"]
    log_path = os.path.join(tmp.name, "node.log")
    with open(log_path, "w") as node_log:
        proc = subprocess.Popen(cmd, stdout=node_log, stderr=subprocess.STDOUT, env=env)
    try:
        return _measure(proc, log_path, ns, height, width, frames, warmup, timeout, log,
                        dict(weights=weights, backend=backend,
                             input_size=list(input_size) if input_size else None,
                             camera_profile=camera_profile))
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()


def _measure(proc, log_path, ns, height, width, frames, warmup, timeout, log, conditions):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("mfaranet_bench_camera", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    lock = threading.Lock()
    arrived: Dict[int, Dict[str, object]] = {}

    def on_output(name):
        def cb(msg):
            t = time.perf_counter()
            with lock:
                arrived.setdefault(msg.header.stamp.sec, {})[name] = (t, msg)
        return cb

    subs = [node.create_subscription(Image, f"{ns}/mfaranet/{name}", on_output(name), qos)
            for name in OUTPUTS]
    subs.append(node.create_subscription(DiagnosticArray, f"{ns}/mfaranet/latency",
                                         on_output("latency"), qos))
    pub = node.create_publisher(Image, f"{ns}/image", qos)
    spinner = threading.Thread(target=lambda: _spin(executor, context), daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + timeout
        while pub.get_subscription_count() == 0 or any(
                s.get_publisher_count() == 0 for s in subs):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the node did not come up:\n" + open(log_path).read())
            time.sleep(0.05)
        log(f"node up; sending {warmup} + {frames} frames of {width}x{height} rgb8")
        frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
        rows: List[Dict[str, float]] = []
        for i in range(warmup + frames):
            msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
            msg.header.stamp.sec = i + 1
            msg.header.frame_id = "bench"
            data = array.array("B")
            data.frombytes(frame.reshape(-1))
            msg.data = data
            t_sent = time.perf_counter()
            pub.publish(msg)
            limit = time.monotonic() + 30.0
            while True:
                with lock:
                    got = arrived.get(i + 1, {})
                    if len(got) == len(OUTPUTS) + 1:
                        break
                if time.monotonic() > limit or proc.poll() is not None:
                    raise RuntimeError(f"frame {i + 1}: outputs missing ({sorted(got)})")
                time.sleep(0.001)
            report = {kv.key: kv.value for kv in got["latency"][1].status[0].values}
            if report.get("outputs") != ",".join(OUTPUTS):
                raise RuntimeError(f"frame {i + 1}: the node published {report.get('outputs')}")
            if i < warmup:
                continue
            ms = {k[:-3]: float(v) for k, v in report.items() if k.endswith("_ms")}
            segmenter = ms["preprocess"] + ms["inference"] + ms["postprocess"]
            last_output = max(got[name][0] for name in OUTPUTS)
            rows.append({"end_to_end": ms["end_to_end"], "segmenter": segmenter,
                         "overhead": ms["end_to_end"] - segmenter, "decode": ms["decode"],
                         "publish": ms["publish"], "queue": ms["queue"],
                         "round_trip": (last_output - t_sent) * 1000.0})
            time.sleep(0.05)
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        context.try_shutdown()
        spinner.join(timeout=2.0)

    def stat(key):
        values = [r[key] for r in rows]
        return {"median": statistics.median(values), "p95": _percentile(values, 95),
                "max": max(values)}

    return {
        "conditions": dict(conditions, frame=f"{width}x{height} rgb8", frames=frames,
                           warmup=warmup, cpu_count=os.cpu_count(),
                           transport="node in its own process, reliable KEEP_LAST"),
        "node_overhead_ms": stat("overhead"),
        "end_to_end_ms": stat("end_to_end"),
        "segmenter_ms": stat("segmenter"),
        "decode_ms": stat("decode"),
        "publish_ms": stat("publish"),
        "queue_ms": stat("queue"),
        "camera_round_trip_ms": stat("round_trip"),
    }


def _spin(executor, context):
    from rclpy.executors import ExternalShutdownException

    try:
        while context.ok():
            executor.spin_once(timeout_sec=0.05)
    except (ExternalShutdownException, RuntimeError):
        pass


def format_report(r: Dict[str, object]) -> str:
    c = r["conditions"]
    lines = [f"node overhead, {c['frame']} camera, backend {c['backend']}, network input "
             f"{c['input_size'] or 'full resolution'}, {c['frames']} frames "
             f"({c['cpu_count']} CPUs):"]
    for key, label in (("node_overhead_ms", "node overhead (end-to-end - segmenter)"),
                       ("end_to_end_ms", "end-to-end in the node (receipt -> 3 outputs)"),
                       ("segmenter_ms", "segmenter (preprocess+inference+postprocess)"),
                       ("decode_ms", "decode"), ("publish_ms", "publish (3 outputs)"),
                       ("queue_ms", "queue (receipt -> worker)"),
                       ("camera_round_trip_ms", "camera round trip (publish -> last output)")):
        s = r[key]
        lines.append(f"  {label:<50} median {s['median']:8.2f} ms   p95 {s['p95']:8.2f}"
                     f"   max {s['max']:8.2f}")
    return "\n".join(lines)
