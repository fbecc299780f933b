"""``mfaranet bench-node --publish-path``: where the node's publishing time goes.

For each output the node publishes (labels and confidence mono8, colour and overlay rgb8, at
the camera's size) and each stage of its publish path, on the installed rclpy:

- ``build``: the node's own work on the message: a reused buffer from its pool and the
  header written into it (:class:`~mfaranet_ros.ros.conversions.BufferPool`); the pixels
  are made in that buffer by the Segmenter (the colour lookup, the blend, the download),
  so no pass of the node's own is left;
- ``copy``: for comparison, the pass the node made before it wrote in place (the pixels
  copied into a new serialized message, :func:`~mfaranet_ros.ros.conversions.serialize_image`);
- ``publish`` with no subscriber: rclpy's copy of the bytes and the middleware's write,
  the bytearray handed over as it is (:func:`~mfaranet_ros.ros.compat.publish_serialized`);
  ``publish_bytes``: the same through ``Publisher.publish(bytes)``, which needs a copy
  into ``bytes`` first (the path rclpy's public API gives);
- ``publish`` with a same-host subscriber in another process, with the node's output QoS
  (reliable, KEEP_LAST 1: what Nav2's layer or a reliable ``ros2 topic echo`` takes) and
  with a best-effort one (KEEP_LAST 5: RViz's and rqt's image displays): the shared-memory
  send.

Each figure is a median over ``iterations`` publishes, with the frame rate of a slow camera
between them, and is also given in *passes*: the median divided by the time of one memcpy
of the same bytes, measured in the same run. This process gets the node's Fast DDS profile,
as the node does.
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["OUTPUT_FORMATS", "SUBSCRIBERS", "bench_publish_path", "format_publish_path"]

#: output -> (encoding, channels)
OUTPUT_FORMATS = {"labels": ("mono8", 1), "color": ("rgb8", 3), "overlay": ("rgb8", 3),
                  "confidence": ("mono8", 1)}
#: subscriber kind -> (reliable, depth)
SUBSCRIBERS = {"reliable": (True, 1), "best_effort": (False, 5)}
TOPIC_PREFIX = "/mfaranet_publish_path"


def _qos(reliable: bool, depth: int):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT)


def _median_ms(fn, iterations: int, pause_s: float = 0.0) -> float:
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
        if pause_s:
            time.sleep(pause_s)
    return statistics.median(times)


def _memcpy_ms(nbytes: int, iterations: int) -> float:
    src = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    return _median_ms(lambda: np.copyto(dst, src), iterations)


def _subscriber(kind: str, env: Dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", __name__, "--subscribe", kind], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_publish_path(frame_size: Tuple[int, int] = (1024, 2048), iterations: int = 30,
                       outputs: Sequence[str] = tuple(OUTPUT_FORMATS),
                       pause_s: float = 0.05, timeout_s: float = 60.0) -> Dict[str, object]:
    """The figures (module docstring) as a JSON-ready dict."""
    import rclpy
    from rclpy.context import Context
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from ..compat import publish_serialized, serialized_publish_path
    from ..conversions import BufferPool, serialize_image
    from ..qos import apply_fastdds_profile
    from .bench_node import ros_envs

    node_env, _ = ros_envs(camera_profile=False)
    applied = apply_fastdds_profile(node_env)
    saved = {k: os.environ.get(k) for k in node_env}
    os.environ.update(node_env)
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("mfaranet_publish_path", context=context)
    h, w = frame_size
    rng = np.random.default_rng(1)
    pixels = {name: rng.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8)
              for name, (_, c) in OUTPUT_FORMATS.items() if name in outputs}
    header = Header(frame_id="camera")
    pubs = {name: node.create_publisher(Image, f"{TOPIC_PREFIX}/{name}", _qos(True, 1))
            for name in pixels}
    stages: Dict[str, Dict[str, float]] = {name: {} for name in pixels}
    procs: List[subprocess.Popen] = []
    pool = BufferPool()

    def build(px, enc):
        pool.give(pool.take(header, px.shape, enc))

    try:
        messages = {name: serialize_image(header, px, OUTPUT_FORMATS[name][0])
                    for name, px in pixels.items()}
        for name, px in pixels.items():
            enc = OUTPUT_FORMATS[name][0]
            stages[name]["build"] = _median_ms(lambda px=px, enc=enc: build(px, enc),
                                               iterations)
            stages[name]["copy"] = _median_ms(
                lambda px=px, enc=enc: serialize_image(header, px, enc), iterations)
            stages[name]["publish_no_subscriber"] = _median_ms(
                lambda n=name: publish_serialized(pubs[n], messages[n]), iterations, pause_s)
            stages[name]["publish_bytes_no_subscriber"] = _median_ms(
                lambda n=name: pubs[n].publish(bytes(messages[n])), iterations, pause_s)
        for kind in SUBSCRIBERS:
            proc = _subscriber(kind, node_env)
            procs.append(proc)
            deadline = time.monotonic() + timeout_s
            while any(p.get_subscription_count() == 0 for p in pubs.values()):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise TimeoutError(f"the {kind} subscriber did not match in {timeout_s} s")
                time.sleep(0.05)
            time.sleep(0.5)   # discovery settles
            for name in pixels:
                stages[name][f"publish_{kind}_subscriber"] = _median_ms(
                    lambda n=name: publish_serialized(pubs[n], messages[n]), iterations,
                    pause_s)
            proc.send_signal(signal.SIGINT)   # leaves the graph at once (a kill: a lease later)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            while any(p.get_subscription_count() for p in pubs.values()):
                if time.monotonic() > deadline + timeout_s:
                    break
                time.sleep(0.05)
        memcpy = {name: _memcpy_ms(px.size, iterations) for name, px in pixels.items()}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        node.destroy_node()
        context.try_shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return _report(stages, memcpy, pixels, frame_size, iterations, applied,
                   serialized_publish_path())


def _report(stages, memcpy, pixels, frame_size, iterations, applied,
            path: str) -> Dict[str, object]:
    from importlib import metadata

    def version(dist: str) -> Optional[str]:
        for name in (dist, f"ros-{dist}", f"ros-jazzy-{dist}"):
            try:
                return f"{name} {metadata.version(name)}"
            except metadata.PackageNotFoundError:
                continue
        return None

    per_output = {}
    for name, st in stages.items():
        per_output[name] = {
            "bytes": int(pixels[name].size), "memcpy_ms": memcpy[name],
            "stages_ms": st,
            "passes": {k: v / memcpy[name] for k, v in st.items()}}
    totals = {}
    for stage in next(iter(stages.values())):
        totals[stage] = sum(st[stage] for st in stages.values())
    three = [n for n in ("labels", "color", "overlay") if n in stages]
    return {"benchmark": "publish_path", "frame_size": list(frame_size),
            "iterations": iterations, "rclpy": version("rclpy") or "from a ROS install",
            "rmw": os.environ.get("RMW_IMPLEMENTATION") or "default (Fast DDS)",
            "fastdds_profile": applied or "the user's / none",
            "serialized_publish": path,
            "outputs": per_output, "totals_ms": totals,
            "three_outputs_ms": {s: sum(stages[n][s] for n in three) for s in totals},
            "three_outputs_memcpy_ms": sum(memcpy[n] for n in three)}


def format_publish_path(r: Dict[str, object]) -> str:
    names = list(r["outputs"])
    lines = [f"publish path, {r['frame_size'][0]}x{r['frame_size'][1]}, {r['rclpy']}, "
             f"{r['rmw']}, bytearray sent {r['serialized_publish']}; medians of "
             f"{r['iterations']}, ms (passes = / one memcpy of the output's bytes)",
             f"{'stage':<32}" + "".join(f"{n:>17}" for n in names)
             + f"{'labels+color+overlay':>22}",
             f"{'  bytes (MB)':<32}" + "".join(f"{r['outputs'][n]['bytes'] / 2**20:>17.1f}"
                                            for n in names)
             + f"{'one memcpy ' + format(r['three_outputs_memcpy_ms'], '.2f'):>22}"]
    for stage in r["totals_ms"]:
        outs = [r["outputs"][n] for n in names]
        cells = "".join(f"{o['stages_ms'][stage]:>9.2f} ({o['passes'][stage]:4.1f}x)"
                        for o in outs)
        lines.append(f"  {stage:<30}{cells}{r['three_outputs_ms'][stage]:>22.2f}")
    return "\n".join(lines)


def _subscribe(kind: str) -> None:
    """The child: subscribes to every output with ``kind``'s QoS until killed."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image

    reliable, depth = SUBSCRIBERS[kind]
    rclpy.init()
    node = rclpy.create_node(f"mfaranet_publish_path_{kind}")
    for name in OUTPUT_FORMATS:
        node.create_subscription(Image, f"{TOPIC_PREFIX}/{name}", lambda m: None,
                                 _qos(reliable, depth))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass   # SIGINT from the benchmark: leave the graph cleanly
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--subscribe" and sys.argv[2] in SUBSCRIBERS:
        _subscribe(sys.argv[2])
    else:
        sys.exit(f"usage: python -m {__name__} --subscribe {{{','.join(SUBSCRIBERS)}}}")
