"""``mfaranet bench-node``: the node in its own process, the camera in another; the
overhead report, the multi-camera comparison, and the caller's environment left alone."""
from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from ros_helpers import constant_checkpoint  # noqa: E402

from mfaranet_ros.cli import build_parser, main  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SUMMARY_KEYS = {"median_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "fps", "n"}
OVERHEAD_KEYS = {"node_overhead_ms", "end_to_end_ms", "segmenter_ms", "decode_ms",
                 "publish_ms", "queue_ms", "wait_ms", "unaccounted_ms",
                 "camera_round_trip_ms"}


def test_ros_envs_share_one_domain_and_copy_os_environ():
    from mfaranet_ros.ros.qos import PROFILE_ENV
    from mfaranet_ros.ros.tools.bench_node import ros_envs

    before = dict(os.environ)
    node_env, camera_env = ros_envs(camera_profile=True)
    assert dict(os.environ) == before
    assert node_env["ROS_DOMAIN_ID"] == camera_env["ROS_DOMAIN_ID"]
    assert node_env["ROS_DOMAIN_ID"] == os.environ["ROS_DOMAIN_ID"]   # set by ros_helpers
    if not os.environ.get(PROFILE_ENV):
        assert camera_env[PROFILE_ENV].endswith(".xml") and PROFILE_ENV not in node_env


def test_bench_node_reports_the_overhead(tmp_path, capsys):
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    out_json = tmp_path / "bench.json"
    build_parser()   # imports every subcommand: OpenCV edits LD_LIBRARY_PATH on import
    before = dict(os.environ)
    assert main(["bench-node", "--weights", str(ckpt), "--input-size", "64x128",
                 "--frame-size", "256x512", "--iterations", "4", "--warmup", "1",
                 "--json", str(out_json)]) == 0
    assert dict(os.environ) == before
    assert "node overhead (end-to-end - segmenter)" in capsys.readouterr().out
    r = json.loads(out_json.read_text())
    assert set(r) == OVERHEAD_KEYS | {"conditions"}
    c = r["conditions"]
    assert c["frame_size"] == [256, 512] and c["input_size"] == [64, 128]
    assert c["iterations"] == 4 and (c["backend"], c["precision"]) == ("torch", "fp32")
    for key in OVERHEAD_KEYS:
        assert set(r[key]) == SUMMARY_KEYS and r[key]["n"] == 4 and r[key]["fps"] is None
    e2e, seg, over = (r[k]["median_ms"] for k in ("end_to_end_ms", "segmenter_ms",
                                                  "node_overhead_ms"))
    assert 0 < seg < e2e and over > 0
    assert r["camera_round_trip_ms"]["median_ms"] >= e2e * 0.9
    assert r["publish_ms"]["median_ms"] <= over
    # The latency report's stages add up to its end-to-end time (3 decimals each).
    assert abs(r["unaccounted_ms"]["max_ms"]) < 0.01


def test_bench_node_cameras(tmp_path, capsys):
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    out_json = tmp_path / "cams.json"
    assert main(["bench-node", "--weights", str(ckpt), "--cameras", "2", "--input-size",
                 "64x128", "--frame-size", "64x128", "--rate", "4", "--seconds", "2",
                 "--json", str(out_json)]) == 0
    assert "N=2: frames/s" in capsys.readouterr().out
    r = json.loads(out_json.read_text())
    assert r["conditions"]["frame_size"] == [64, 128]
    (row,) = r["results"]
    assert row["batched"]["processes"] == 1 and row["separate"]["processes"] == 2
    for mode in ("batched", "separate"):
        g = row[mode]
        assert len(g["per_camera_frames"]) == 2 and g["frames_per_s"] > 0
        assert g["median_latency_ms"] == g["latency"]["median_ms"] > 0
        assert g["peak_rss_mb"] > 50
    # One model copy instead of two.
    assert row["memory_ratio"] == pytest.approx(
        row["batched"]["peak_rss_mb"] / row["separate"]["peak_rss_mb"])
    assert row["memory_ratio"] < 0.8


def test_bench_node_outputs_measures_the_variants_in_one_run(tmp_path, capsys):
    """--outputs: three outputs, every output (the camera also receives confidence and
    camera_info, and sends camera_info), and every output at network resolution, each
    with its own node, and the differences of the medians."""
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    out_json = tmp_path / "outputs.json"
    assert main(["bench-node", "--outputs", "--weights", str(ckpt), "--input-size", "64x128",
                 "--frame-size", "128x256", "--iterations", "3", "--warmup", "1",
                 "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    r = json.loads(out_json.read_text())
    names = list(r["variants"])
    assert names == ["three outputs", "every output",
                     "every output, label_resolution network"]
    for name in names:
        assert name in printed
        run = r["variants"][name]
        assert set(run) == OVERHEAD_KEYS | {"conditions"} and run["node_overhead_ms"]["n"] == 3
    assert r["variants"]["every output"]["conditions"]["outputs"] == [
        "labels", "color", "overlay", "confidence", "camera_info"]
    assert r["variants"][names[2]]["conditions"]["label_resolution"] == "network"
    deltas = r["median_delta_vs_three_outputs_ms"]
    assert deltas["three outputs"] == {"node_overhead_ms": 0.0, "end_to_end_ms": 0.0}


def test_bench_node_publish_path_attributes_every_output_and_stage(tmp_path, capsys):
    """--publish-path: per output, the node's own build and rclpy's publish() with no, a
    reliable and a best-effort subscriber in another process, in ms and in passes."""
    out = tmp_path / "pp.json"
    assert main(["bench-node", "--publish-path", "--frame-size", "96x128", "--iterations", "3",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "publish path, 96x128" in printed and "labels+color+overlay" in printed
    report = json.loads(out.read_text())
    stages = {"build", "copy", "publish_no_subscriber", "publish_bytes_no_subscriber",
              "publish_reliable_subscriber", "publish_best_effort_subscriber"}
    assert set(report["outputs"]) == {"labels", "color", "overlay", "confidence"}
    for name, o in report["outputs"].items():
        assert o["bytes"] == 96 * 128 * (3 if name in ("color", "overlay") else 1)
        assert set(o["stages_ms"]) == stages and all(v > 0 for v in o["stages_ms"].values())
        assert set(o["passes"]) == stages and o["memcpy_ms"] > 0
    assert report["rclpy"] and report["serialized_publish"] == "direct"


def test_bench_node_overlap_compares_both_settings_in_one_run(tmp_path, capsys):
    """--overlap: one saturating camera, three outputs subscribed, the node with
    publish_overlap never and always (a process each), the frame period and the latency."""
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    out_json = tmp_path / "overlap.json"
    assert main(["bench-node", "--overlap", "--weights", str(ckpt), "--input-size", "64x128",
                 "--frame-size", "128x256", "--rate", "10", "--seconds", "1.5",
                 "--rounds", "1", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "always / never: frame period" in printed
    r = json.loads(out_json.read_text())
    assert list(r["settings"]) == ["never", "always"]
    for s in r["settings"].values():
        assert s["frames"] > 0
        assert s["frame_period_ms"] == pytest.approx(1e3 / s["frames_per_s"])
        assert {"inference", "wait", "publish", "end_to_end"} <= set(s["stages_ms"])
        assert s["latency"]["median_ms"] == s["stages_ms"]["end_to_end"] > 0
    assert r["frame_period_ratio"] == pytest.approx(
        r["settings"]["always"]["frame_period_ms"] / r["settings"]["never"]["frame_period_ms"])
    assert main(["bench-node", "--overlap", "--rounds", "0"]) == 2
