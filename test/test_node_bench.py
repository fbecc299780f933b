"""``mfaranet bench-node``: runs the node in its own process and reports its overhead."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from ros_helpers import REPO, constant_checkpoint  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_bench_node_reports_the_overhead(tmp_path):
    ckpt = constant_checkpoint(tmp_path / "car.pth")
    out_json = tmp_path / "bench.json"
    res = subprocess.run(
        [sys.executable, "-m", "mfaranet_ros.cli", "bench-node", "--weights", str(ckpt),
         "--input-size", "64", "128", "--height", "256", "--width", "512", "--frames", "4",
         "--warmup", "1", "--json", str(out_json)],
        capture_output=True, text=True, timeout=180, cwd=str(REPO))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "node overhead (end-to-end - segmenter)" in res.stdout
    r = json.loads(out_json.read_text())
    assert r["conditions"]["frame"] == "512x256 rgb8" and r["conditions"]["frames"] == 4
    e2e, seg, over = (r[k]["median"] for k in ("end_to_end_ms", "segmenter_ms",
                                               "node_overhead_ms"))
    assert 0 < seg < e2e and over > 0
    assert r["camera_round_trip_ms"]["median"] >= e2e * 0.9
    assert r["publish_ms"]["median"] <= over
