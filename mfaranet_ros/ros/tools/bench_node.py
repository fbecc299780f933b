"""``mfaranet bench-node``: the node's own cost, measured across processes.

Two benchmarks, each with the node(s) under test and the camera in processes of their own
(the camera side is :mod:`.bench_camera`):

- *overhead*: the camera publishes one frame, waits until labels, color, overlay and the
  latency report of that frame are back, and publishes the next. The node's overhead per
  frame is its own end-to-end time (receipt -> all three outputs published) minus the
  Segmenter's time (preprocess + inference + postprocess), both from the frame's
  ``~/latency`` report. The round trip the camera sees (publish -> last output received)
  is reported for context: it adds both DDS transfers and the camera's receive cost.
- *several cameras* (``--cameras N``): N cameras batched in one node process against N
  single-camera node processes, every camera publishing faster than the model runs.

The children share one DDS domain: this process's ``ROS_DOMAIN_ID`` when set, else a
random one in 100-199; discovery stays on this host unless the environment says otherwise.
"""
from __future__ import annotations

import logging
import os
import random
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from ...bench import BackendPrecision, child_env, run_workers, summarize, weights_or_random
from ...bench.processes import peak_rss_mb, python_command, start_logged, stop_processes

__all__ = ["bench_node", "bench_node_cameras", "bench_node_outputs", "bench_node_overlap",
           "format_report", "format_multicamera", "format_outputs", "format_overlap",
           "ros_envs", "node_command"]

log = logging.getLogger(__name__)

TORCH_FP32 = BackendPrecision("torch", "fp32")
#: The node's image outputs, all enabled while benchmarking.
OUTPUTS = ("labels", "color", "overlay")
#: Every output: the three above, the confidence and camera_info (the camera publishing
#: its camera_info beside each frame).
ALL_OUTPUTS = OUTPUTS + ("confidence", "camera_info")
OVERHEAD_WORKER = "mfaranet_ros.ros.tools.bench_camera:overhead_camera"
CAMERAS_WORKER = "mfaranet_ros.ros.tools.bench_camera:multi_camera"


def ros_envs(camera_profile: bool = True) -> Tuple[Dict[str, str], Dict[str, str]]:
    """The environments of a benchmark's node(s) and camera: one domain, discovery on this
    host, and for the camera the Fast DDS large shared-memory profile (6 MB frames; the
    node applies it to itself)."""
    from ..compat import localhost_discovery_env

    discovery = {k: os.environ.get(k) or v for k, v in localhost_discovery_env().items()}
    node_env = child_env({
        "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID") or str(random.randint(100, 199)),
        **discovery,
    })
    camera_env = dict(node_env)
    if camera_profile:
        from ..qos import apply_fastdds_profile
        apply_fastdds_profile(camera_env)
    return node_env, camera_env


def node_command(ns: str, weights: str, pair: BackendPrecision,
                 input_size: Optional[Sequence[int]], cameras: Sequence[str] = (),
                 parameters: Sequence[str] = ()) -> List[str]:
    """The node's entry point under namespace ``ns``; ``input_size`` None: full resolution
    (``input_size:=[0, 0]``; the node's empty default would take the checkpoint's size)."""
    cmd = python_command("mfaranet_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}",
                         "-p", f"weights:={weights}", "-p", f"backend:={pair.backend}",
                         "-p", f"precision:={pair.precision}")
    h, w = (int(v) for v in input_size) if input_size else (0, 0)
    cmd += ["-p", f"input_size:=[{h}, {w}]"]
    if cameras:
        cmd += ["-p", f"cameras:=[{', '.join(cameras)}]"]
    for parameter in parameters:
        cmd += ["-p", parameter]
    return cmd


class _Nodes:
    """Node processes with their logs; stopped (SIGINT, then kill) on exit."""

    def __init__(self, commands: Sequence[List[str]], env: Dict[str, str], folder: str) -> None:
        self.logs = [os.path.join(folder, f"node{i}.log") for i in range(len(commands))]
        self.procs = [start_logged(cmd, env, path) for cmd, path in zip(commands, self.logs)]

    def __enter__(self) -> "_Nodes":
        return self

    def __exit__(self, *exc) -> None:
        stop_processes(self.procs)

    def watch(self) -> Optional[str]:
        """Why to stop waiting for the camera: a node that exited, with its log's end."""
        for proc, path in zip(self.procs, self.logs):
            if proc.poll() is not None:
                with open(path, errors="replace") as f:
                    return f"the node exited (rc {proc.returncode}):\n{f.read()[-3000:]}"
        return None

    def peak_rss_mb(self) -> float:
        return sum(peak_rss_mb(p.pid) for p in self.procs)


def _overhead_report(frames: List[Dict[str, float]], conditions: Dict) -> Dict[str, object]:
    def summary(key: str) -> Dict[str, object]:
        return summarize([f[key] for f in frames]).as_dict()

    return {"conditions": conditions, "node_overhead_ms": summary("overhead"),
            "end_to_end_ms": summary("end_to_end"), "segmenter_ms": summary("segmenter"),
            "decode_ms": summary("decode"), "publish_ms": summary("publish"),
            "queue_ms": summary("queue"), "wait_ms": summary("wait"),
            "unaccounted_ms": summary("unaccounted"),
            "camera_round_trip_ms": summary("round_trip")}


def bench_node(weights: Optional[str] = None, *, pair: BackendPrecision = TORCH_FP32,
               input_size: Optional[Tuple[int, int]] = (256, 512),
               frame_size: Tuple[int, int] = (1024, 2048), iterations: int = 30,
               warmup: int = 5, camera_profile: bool = True,
               timeout: float = 120.0, outputs: Sequence[str] = OUTPUTS,
               label_resolution: str = "camera") -> Dict[str, object]:
    """The node's overhead per frame; returns the figures (ms) and the conditions.

    ``outputs``: what the camera subscribes to (:data:`ALL_OUTPUTS` adds the confidence and
    camera_info, the camera then publishing its camera_info with each frame)."""
    ns = f"/mfaranet_bench_{os.getpid()}"
    given = weights
    node_env, camera_env = ros_envs(camera_profile)
    spec = {"ns": ns, "frame_size": list(frame_size), "iterations": iterations,
            "warmup": warmup, "timeout": timeout, "outputs": list(outputs)}
    parameters = [f"label_resolution:={label_resolution}"]
    with tempfile.TemporaryDirectory(prefix="mfaranet_bench_") as tmp:
        weights = weights_or_random(weights, tmp)
        with _Nodes([node_command(ns, weights, pair, input_size, parameters=parameters)],
                    node_env, tmp) as nodes:
            log.info("node starting; then %d + %d frames of %dx%d rgb8", warmup, iterations,
                     *frame_size)
            # The camera gives up on a frame after 30 s; this bounds set-up and run each.
            (report,) = run_workers(OVERHEAD_WORKER, [spec], camera_env,
                                    timeout + 30.0 * (warmup + iterations), nodes.watch)
    conditions = {"weights": given or "random init", "backend": pair.backend,
                  "precision": pair.precision,
                  "input_size": list(input_size) if input_size else None,
                  "frame_size": list(frame_size), "encoding": "rgb8", "iterations": iterations,
                  "warmup": warmup, "camera_profile": camera_profile,
                  "outputs": list(outputs), "label_resolution": label_resolution,
                  "cpu_count": os.cpu_count(), "ros_domain_id": int(node_env["ROS_DOMAIN_ID"]),
                  "transport": "node in its own process, reliable KEEP_LAST"}
    return _overhead_report(report["frames"], conditions)


#: ``bench-node --outputs``: the variants measured one after another in one run
OUTPUT_VARIANTS = (("three outputs", OUTPUTS, "camera"),
                   ("every output", ALL_OUTPUTS, "camera"),
                   ("every output, label_resolution network", ALL_OUTPUTS, "network"))


def bench_node_outputs(weights: Optional[str] = None, **kwargs) -> Dict[str, object]:
    """:func:`bench_node` for each of :data:`OUTPUT_VARIANTS`, one after another (a node
    process each), and the differences of their medians to the first."""
    runs = {name: bench_node(weights, outputs=outputs, label_resolution=resolution, **kwargs)
            for name, outputs, resolution in OUTPUT_VARIANTS}
    base = runs[OUTPUT_VARIANTS[0][0]]

    def median(run, key):
        return run[key]["median_ms"]

    deltas = {name: {key: median(run, key) - median(base, key)
                     for key in ("node_overhead_ms", "end_to_end_ms")}
              for name, run in runs.items()}
    return {"variants": runs, "median_delta_vs_three_outputs_ms": deltas}


def format_outputs(r: Dict[str, object]) -> str:
    lines = [f"{'variant':<42}{'overhead':>10}{'end-to-end':>12}{'publish':>10}"
             f"{'d overhead':>12}{'d e2e':>9}   (medians, ms)"]
    for name, run in r["variants"].items():
        d = r["median_delta_vs_three_outputs_ms"][name]
        lines.append(f"{name:<42}{run['node_overhead_ms']['median_ms']:>10.2f}"
                     f"{run['end_to_end_ms']['median_ms']:>12.2f}"
                     f"{run['publish_ms']['median_ms']:>10.2f}"
                     f"{d['node_overhead_ms']:>+12.2f}{d['end_to_end_ms']:>+9.2f}")
    return "\n".join(lines)


def _layout(ns: str, names: Sequence[str],
            batched: bool) -> List[Tuple[str, List[str], str]]:
    """(image, [labels], latency) topics per camera, as the node names them in each setup."""
    if batched:
        return [(f"{ns}/{c}/image", [f"{ns}/mfaranet/{c}/labels"],
                 f"{ns}/mfaranet/{c}/latency") for c in names]
    return [(f"{ns}/{c}/image", [f"{ns}/{c}/mfaranet/labels"], f"{ns}/{c}/mfaranet/latency")
            for c in names]


def _camera_setup(n: int, batched: bool, weights: str, pair: BackendPrecision, input_size,
                  spec: Dict, tmp: str) -> Dict[str, object]:
    """One setup (one batched node or N single-camera nodes) measured for ``spec["seconds"]``."""
    ns = f"/mc_{os.getpid()}_{'batched' if batched else 'separate'}_{n}"
    names = [f"cam{i}" for i in range(n)]
    commands = ([node_command(ns, weights, pair, input_size, names)] if batched else
                [node_command(f"{ns}/{c}", weights, pair, input_size) for c in names])
    node_env, camera_env = ros_envs()
    with _Nodes(commands, node_env, tmp) as nodes:
        log.info("%s: %d cameras, %d node process(es)", "batched" if batched else "separate",
                 n, len(commands))
        (r,) = run_workers(CAMERAS_WORKER, [dict(spec, layout=_layout(ns, names, batched))],
                           camera_env, spec["timeout"] + spec["settle"] + spec["seconds"] * 3,
                           nodes.watch)
        memory = nodes.peak_rss_mb()
    if not r["latencies_ms"]:
        raise RuntimeError(f"no frame came back within {spec['seconds']} s with {n} cameras; "
                           f"measure for longer (--seconds)")
    latency = summarize(r["latencies_ms"]).as_dict()
    return {"frames_per_s": sum(r["per_camera_frames"]) / r["window_s"],
            "median_latency_ms": latency["median_ms"], "latency": latency,
            "per_camera_frames": r["per_camera_frames"], "peak_rss_mb": memory,
            "processes": len(commands)}


def bench_node_cameras(cameras: Sequence[int] = (2, 4), weights: Optional[str] = None, *,
                       pair: BackendPrecision = TORCH_FP32,
                       input_size: Optional[Tuple[int, int]] = (256, 512),
                       frame_size: Tuple[int, int] = (480, 640), rate: float = 15.0,
                       seconds: float = 10.0, settle: float = 3.0,
                       timeout: float = 180.0) -> Dict[str, object]:
    """N cameras batched in one node process against N single-camera node processes.

    Every camera publishes at ``rate`` Hz (faster than the model runs, so both setups are
    saturated and the frames/s is their capacity). Memory is the peak RSS (VmHWM) of the
    node process(es), summed over the N processes.
    """
    spec = {"frame_size": list(frame_size), "rate": rate, "seconds": seconds,
            "settle": settle, "timeout": timeout}
    results, given = [], weights
    with tempfile.TemporaryDirectory(prefix="mfaranet_bench_mc_") as tmp:
        weights = weights_or_random(weights, tmp)
        for n in cameras:
            b, s = (_camera_setup(n, batched, weights, pair, input_size, spec, tmp)
                    for batched in (True, False))
            results.append({"cameras": n, "batched": b, "separate": s,
                            "throughput_ratio": b["frames_per_s"] / s["frames_per_s"],
                            "latency_ratio": b["median_latency_ms"] / s["median_latency_ms"],
                            "memory_ratio": b["peak_rss_mb"] / s["peak_rss_mb"]})
    return {"conditions": {"weights": given or "random init", "backend": pair.backend,
                           "precision": pair.precision,
                           "input_size": list(input_size) if input_size else None,
                           "frame_size": list(frame_size), "encoding": "rgb8",
                           "rate_hz_per_camera": rate, "seconds": seconds,
                           "cpu_count": os.cpu_count()},
            "results": results}


#: ``bench-node --overlap``: the node's publish_overlap settings compared in one run
OVERLAP_SETTINGS = ("never", "always")


def bench_node_overlap(weights: Optional[str] = None, *, pair: BackendPrecision = TORCH_FP32,
                       input_size: Optional[Tuple[int, int]] = (256, 512),
                       frame_size: Tuple[int, int] = (1024, 2048), rate: float = 30.0,
                       seconds: float = 10.0, settle: float = 3.0, rounds: int = 2,
                       timeout: float = 180.0) -> Dict[str, object]:
    """One camera publishing faster than the node runs, labels, color and overlay
    subscribed, against the node with ``publish_overlap`` never and always (a node process each,
    alternated ``rounds`` times so both see the same machine): the frame period (the
    inverse of the frames/s it sustains) and a frame's latency (its ``end_to_end_ms``),
    with the stage medians of the frames' latency reports."""
    spec = {"frame_size": list(frame_size), "rate": rate, "seconds": seconds,
            "settle": settle, "timeout": timeout}
    runs: Dict[str, List[Dict[str, object]]] = {s: [] for s in OVERLAP_SETTINGS}
    given = weights
    with tempfile.TemporaryDirectory(prefix="mfaranet_bench_overlap_") as tmp:
        weights = weights_or_random(weights, tmp)
        for _ in range(rounds):
            for setting in OVERLAP_SETTINGS:
                ns = f"/ov_{os.getpid()}_{setting}"
                command = node_command(ns, weights, pair, input_size,
                                       parameters=[f"publish_overlap:={setting}"])
                layout = [(f"{ns}/image", [f"{ns}/mfaranet/{o}" for o in OUTPUTS],
                           f"{ns}/mfaranet/latency")]
                node_env, camera_env = ros_envs()
                with _Nodes([command], node_env, tmp) as nodes:
                    log.info("publish_overlap %s: one camera at %.0f Hz", setting, rate)
                    (r,) = run_workers(CAMERAS_WORKER, [dict(spec, layout=layout)],
                                       camera_env, timeout + settle + seconds * 3,
                                       nodes.watch)
                if not r["latencies_ms"]:
                    raise RuntimeError(f"no frame came back within {seconds} s; measure for "
                                       f"longer (--seconds)")
                runs[setting].append(r)
    result: Dict[str, object] = {}
    for setting, rs in runs.items():
        frames = sum(sum(r["per_camera_frames"]) for r in rs)
        window = sum(r["window_s"] for r in rs)
        stages = {k: summarize([v for r in rs for v in r["stages_ms"].get(k, [])]).as_dict()
                  for k in rs[0]["stages_ms"]}
        result[setting] = {"frames_per_s": frames / window, "frame_period_ms": 1e3 * window
                           / frames, "frames": frames, "latency": stages["end_to_end"],
                           "stages_ms": {k: v["median_ms"] for k, v in stages.items()}}
    off, on = result["never"], result["always"]
    return {"conditions": {"weights": given or "random init", "backend": pair.backend,
                           "precision": pair.precision,
                           "input_size": list(input_size) if input_size else None,
                           "frame_size": list(frame_size), "encoding": "rgb8",
                           "outputs": list(OUTPUTS), "rate_hz": rate, "seconds": seconds,
                           "rounds": rounds, "cpu_count": os.cpu_count()},
            "settings": result,
            "frame_period_ratio": on["frame_period_ms"] / off["frame_period_ms"],
            "latency_ratio": on["latency"]["median_ms"] / off["latency"]["median_ms"]}


def format_overlap(r: Dict[str, object]) -> str:
    c = r["conditions"]
    lines = [f"publish_overlap, one {_size(c['frame_size'])} rgb8 camera at {c['rate_hz']} Hz, "
             f"labels+color+overlay subscribed, backend {c['backend']}:{c['precision']}, "
             f"network input {_size(c['input_size'])}, {c['rounds']} x {c['seconds']} s per "
             f"setting ({c['cpu_count']} CPUs):",
             f"  {'setting':<8}{'frames/s':>9}{'period':>9}{'latency':>9}{'inference':>10}"
             f"{'wait':>7}{'publish':>9}   (medians, ms)"]
    for setting, s in r["settings"].items():
        st = s["stages_ms"]
        lines.append(f"  {setting:<8}{s['frames_per_s']:>9.2f}{s['frame_period_ms']:>9.1f}"
                     f"{s['latency']['median_ms']:>9.1f}{st.get('inference', 0):>10.1f}"
                     f"{st.get('wait', 0):>7.1f}{st.get('publish', 0):>9.1f}")
    lines.append(f"  always / never: frame period x{r['frame_period_ratio']:.3f}, latency "
                 f"x{r['latency_ratio']:.3f}")
    return "\n".join(lines)


def _size(size) -> str:
    return f"{size[0]}x{size[1]}" if size else "full resolution"


def format_report(r: Dict[str, object]) -> str:
    c = r["conditions"]
    lines = [f"node overhead, {_size(c['frame_size'])} rgb8 camera, backend {c['backend']}:"
             f"{c['precision']}, network input {_size(c['input_size'])}, {c['iterations']} "
             f"frames ({c['cpu_count']} CPUs):"]
    for key, label in (("node_overhead_ms", "node overhead (end-to-end - segmenter)"),
                       ("end_to_end_ms", "end-to-end in the node (receipt -> 3 outputs)"),
                       ("segmenter_ms", "segmenter (preprocess+inference+postprocess)"),
                       ("decode_ms", "decode"), ("publish_ms", "publish (3 outputs)"),
                       ("queue_ms", "queue (receipt -> worker)"),
                       ("wait_ms", "wait (results -> its publishing starts)"),
                       ("unaccounted_ms", "end-to-end - sum of the report's stages"),
                       ("camera_round_trip_ms", "camera round trip (publish -> last output)")):
        s = r[key]
        lines.append(f"  {label:<50} median {s['median_ms']:8.2f} ms   p95 {s['p95_ms']:8.2f}"
                     f"   max {s['max_ms']:8.2f}")
    return "\n".join(lines)


def format_multicamera(r: Dict[str, object]) -> str:
    c = r["conditions"]
    lines = [f"several cameras, {_size(c['frame_size'])} rgb8 at {c['rate_hz_per_camera']} Hz "
             f"each, backend {c['backend']}:{c['precision']}, network input "
             f"{_size(c['input_size'])}, {c['seconds']} s ({c['cpu_count']} CPUs); batched = "
             f"one node, one model; separate = one node process per camera:"]
    for row in r["results"]:
        b, s = row["batched"], row["separate"]
        lines.append(
            f"  N={row['cameras']}: frames/s {b['frames_per_s']:6.2f} vs {s['frames_per_s']:6.2f}"
            f" (x{row['throughput_ratio']:.2f}); median latency {b['median_latency_ms']:7.1f}"
            f" vs {s['median_latency_ms']:7.1f} ms (x{row['latency_ratio']:.2f}); peak RSS "
            f"{b['peak_rss_mb']:6.0f} vs {s['peak_rss_mb']:6.0f} MB (x{row['memory_ratio']:.2f})")
    return "\n".join(lines)
