"""Node overhead across processes (`mfaranet bench-node`).

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

__all__ = ["bench_node", "format_report", "bench_multicamera", "format_multicamera"]

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


# ------------------------------------------------------------------ several cameras

def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _node_cmd(ns, weights, backend, input_size, cameras=None):
    cmd = [sys.executable, "-m", "mfaranet_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}",
           "-p", f"weights:={weights}", "-p", f"backend:={backend}"]
    if input_size:
        cmd += ["-p", f"input_size:=[{int(input_size[0])}, {int(input_size[1])}]"]
    if cameras:
        cmd += ["-p", f"cameras:=[{', '.join(cameras)}]"]
    return cmd


def _run_cameras(layout, procs, height, width, rate, seconds, settle, log):
    """Publish every camera at ``rate`` Hz; count labels per camera after ``settle`` s.

    ``layout``: (input topic, labels topic, latency topic) per camera. Returns the
    frames/s over all cameras, the median node end-to-end latency and per-camera counts.
    """
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("mfaranet_bench_cameras", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    lock = threading.Lock()
    window = {"open": False}
    counts = [0] * len(layout)
    latencies: List[float] = []

    def on_latency(i):
        def cb(msg):
            with lock:
                if window["open"]:
                    counts[i] += 1
                    for kv in msg.status[0].values:
                        if kv.key == "end_to_end_ms":
                            latencies.append(float(kv.value))
        return cb

    pubs, subs = [], []
    for i, (image, labels, latency) in enumerate(layout):
        pubs.append(node.create_publisher(Image, image, qos))
        subs.append(node.create_subscription(Image, labels, lambda m: None, qos))
        subs.append(node.create_subscription(DiagnosticArray, latency, on_latency(i), qos))
    spinner = threading.Thread(target=lambda: _spin(executor, context), daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 180.0
        while any(p.get_subscription_count() == 0 for p in pubs) or any(
                s.get_publisher_count() == 0 for s in subs):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                raise RuntimeError("a node did not come up")
            time.sleep(0.1)
        frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
        data = array.array("B")
        data.frombytes(frame.reshape(-1))
        t0 = time.monotonic()
        tick = 0
        t_open = t_close = None
        while True:
            now = time.monotonic()
            if t_open is None and now - t0 >= settle:
                with lock:
                    window["open"] = True
                t_open = now
            if t_open is not None and now - t_open >= seconds:
                with lock:
                    window["open"] = False
                t_close = now
                break
            for i, pub in enumerate(pubs):
                msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
                msg.header.stamp.sec = tick
                msg.header.frame_id = f"cam{i}"
                msg.data = data
                pub.publish(msg)
            tick += 1
            time.sleep(max(0.0, t0 + tick / rate - time.monotonic()))
        log(f"  {len(layout)} cameras: {sum(counts)} frames segmented in "
            f"{t_close - t_open:.1f} s")
        return {"frames_per_s": sum(counts) / (t_close - t_open),
                "median_latency_ms": statistics.median(latencies) if latencies else float("nan"),
                "per_camera_frames": counts}
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        context.try_shutdown()
        spinner.join(timeout=2.0)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(2)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def bench_multicamera(cameras: Sequence[int] = (2, 4), weights: Optional[str] = None, *,
                      backend: str = "torch", input_size: Optional[Sequence[int]] = (256, 512),
                      height: int = 480, width: int = 640, rate: float = 15.0,
                      seconds: float = 10.0, settle: float = 3.0,
                      log=print) -> Dict[str, object]:
    """N cameras batched in one node process against N single-camera node processes.

    Every camera publishes at ``rate`` Hz (faster than the model runs, so both setups
    are saturated and the frames/s is their capacity). Memory is the peak RSS (VmHWM)
    of the node process(es), summed over the N processes.
    """
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 199)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from mfaranet_ros.ros.qos import apply_fastdds_profile
    apply_fastdds_profile()
    tmp = tempfile.TemporaryDirectory(prefix="mfaranet_bench_mc_")
    weights = weights or _random_checkpoint(tmp.name)
    results = []
    try:
        for n in cameras:
            names = [f"cam{i}" for i in range(n)]
            row: Dict[str, object] = {"cameras": n}
            for mode in ("batched", "separate"):
                ns = f"/mc_{os.getpid()}_{mode}_{n}"
                devnull = open(os.devnull, "w")
                if mode == "batched":
                    procs = [subprocess.Popen(_node_cmd(ns, weights, backend, input_size, names),
                                              stdout=devnull, stderr=subprocess.STDOUT, env=env)]
                    layout = [(f"{ns}/{c}/image", f"{ns}/{c}/labels", f"{ns}/{c}/latency")
                              for c in names]
                else:
                    procs = [subprocess.Popen(_node_cmd(f"{ns}/{c}", weights, backend, input_size),
                                              stdout=devnull, stderr=subprocess.STDOUT, env=env)
                             for c in names]
                    layout = [(f"{ns}/{c}/image", f"{ns}/{c}/mfaranet/labels",
                               f"{ns}/{c}/mfaranet/latency") for c in names]
                log(f"{mode}: {n} cameras, {len(procs)} node process(es)")
                try:
                    r = _run_cameras(layout, procs, height, width, rate, seconds, settle, log)
                    r["peak_rss_mb"] = sum(_peak_rss_mb(p.pid) for p in procs)
                    r["processes"] = len(procs)
                finally:
                    _stop(procs)
                    devnull.close()
                row[mode] = r
            b, s = row["batched"], row["separate"]
            row["throughput_ratio"] = b["frames_per_s"] / max(s["frames_per_s"], 1e-9)
            row["latency_ratio"] = b["median_latency_ms"] / s["median_latency_ms"]
            row["memory_ratio"] = b["peak_rss_mb"] / s["peak_rss_mb"]
            results.append(row)
    finally:
        tmp.cleanup()
    return {"conditions": {"backend": backend, "input_size": list(input_size) if input_size
                           else None, "frame": f"{width}x{height} rgb8",
                           "rate_hz_per_camera": rate, "seconds": seconds,
                           "cpu_count": os.cpu_count(), "device": "cpu" if backend in (
                               "torch", "onnxruntime") else backend},
            "results": results}


def format_multicamera(r: Dict[str, object]) -> str:
    c = r["conditions"]
    lines = [f"several cameras, {c['frame']} at {c['rate_hz_per_camera']} Hz each, backend "
             f"{c['backend']}, network input {c['input_size']}, {c['seconds']} s "
             f"({c['cpu_count']} CPUs); batched = one node, one model; separate = one node "
             f"process per camera:"]
    for row in r["results"]:
        b, s = row["batched"], row["separate"]
        lines.append(
            f"  N={row['cameras']}: frames/s {b['frames_per_s']:6.2f} vs {s['frames_per_s']:6.2f}"
            f" (x{row['throughput_ratio']:.2f}); median latency {b['median_latency_ms']:7.1f}"
            f" vs {s['median_latency_ms']:7.1f} ms (x{row['latency_ratio']:.2f}); peak RSS "
            f"{b['peak_rss_mb']:6.0f} vs {s['peak_rss_mb']:6.0f} MB (x{row['memory_ratio']:.2f})")
    return "\n".join(lines)
