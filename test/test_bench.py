"""`mfaranet build-engine` and `mfaranet bench` (single and multi-camera), on tiny sizes."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from mfaranet_ros.cli import main
from mfaranet_ros.inference.bench import stats
from mfaranet_ros.cli_args import parse_size


@pytest.fixture(scope="module")
def bench_checkpoint(request, tiny_checkpoint):
    """The parity tests' checkpoint where it exists (its 64x128 ONNX file is then already
    cached by test_backends.py in the same session), else the random-init one."""
    try:
        return request.getfixturevalue("varied_checkpoint")
    except pytest.skip.Exception:
        return tiny_checkpoint


def test_parse_size_and_stats():
    assert parse_size("512x1024") == (512, 1024)
    assert parse_size("64X128") == (64, 128)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("512")
    s = stats([0.010, 0.020, 0.030, 0.040, 1.0], frames_per_sample=2)
    assert s.median_ms == pytest.approx(30.0)
    assert s.p90_ms == pytest.approx(np.percentile([10, 20, 30, 40, 1000], 90))
    assert s.p99_ms > s.p90_ms > s.median_ms
    assert s.fps == pytest.approx(2 / 0.030)


def test_build_engine_onnxruntime(bench_checkpoint, inference_cache_dir, capsys):
    argv = ["build-engine", "--weights", str(bench_checkpoint), "--backend", "onnxruntime",
            "--input-size", "64x128", "--cache-dir", str(inference_cache_dir)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"cache directory: {inference_cache_dir}" in out
    cached = [line.split("cached at ", 1)[1] for line in out.splitlines() if "cached at " in line]
    assert len(cached) == 1 and cached[0].startswith(str(inference_cache_dir))
    assert cached[0].endswith(".onnx")
    # Second run: a cache hit, same path.
    assert main(argv) == 0
    assert cached[0] in capsys.readouterr().out


def test_bench_single_table_and_json(bench_checkpoint, inference_cache_dir, tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    argv = ["bench", "--weights", str(bench_checkpoint), "--backends", "torch,onnxruntime,tensorrt",
            "--input-size", "64x128", "--frame-size", "96x160", "--iterations", "2", "--warmup", "0",
            "--cache-dir", str(inference_cache_dir), "--json", str(out_json)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "torch-eager (baseline)" in out and "onnxruntime" in out
    report = json.loads(out_json.read_text())
    rows = {r["backend"]: r for r in report["single"]}
    assert set(rows) == {"torch-eager (baseline)", "torch", "onnxruntime", "tensorrt"}
    base = rows["torch-eager (baseline)"]
    assert base["speedup_model"] == 1.0 and "NCHW" in base["description"]
    for name in ("torch", "onnxruntime"):
        r = rows[name]
        assert r["error"] is None
        assert r["input_size"] == [64, 128] and r["frame_size"] == [96, 160]
        for part in ("model", "segmenter"):
            st = r[part]
            assert st["n"] == 2 and 0 < st["median_ms"] <= st["p90_ms"] <= st["p99_ms"]
            assert st["fps"] == pytest.approx(1e3 / st["median_ms"])
        assert r["speedup_model"] == pytest.approx(base["model"]["median_ms"] / r["model"]["median_ms"])
        assert r["pre_post_ms"] > 0 and r["pre_post_pct"] > 0
    assert "channels_last" in rows["torch"]["description"]
    if rows["tensorrt"]["error"] is not None:
        assert "unavailable" in out


def test_bench_cameras(bench_checkpoint, inference_cache_dir, tmp_path, capsys):
    out_json = tmp_path / "cams.json"
    argv = ["bench", "--weights", str(bench_checkpoint), "--cameras", "2",
            "--camera-backend", "onnxruntime", "--input-size", "64x128", "--iterations", "1",
            "--warmup", "0", "--cache-dir", str(inference_cache_dir), "--json", str(out_json)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 process, batched" in out and "2 processes" in out
    (res,) = json.loads(out_json.read_text())["cameras"]
    assert res["cameras"] == 2
    assert res["batched"]["processes"] == 1 and res["separate"]["processes"] == 2
    for mode in ("batched", "separate"):
        g = res[mode]
        assert g["frames"] == 2 and g["throughput_fps"] > 0
        assert g["latency"]["n"] == (1 if mode == "batched" else 2)
        assert g["peak_rss_mb_sum"] > 50           # each process holds torch + the model
        assert g["cpu_s_per_frame"] > 0
    q = res["ratios_batched_over_separate"]
    assert q["peak_rss"] == pytest.approx(res["batched"]["peak_rss_mb_sum"] / res["separate"]["peak_rss_mb_sum"])
    # One model copy instead of two: clearly less memory.
    assert q["peak_rss"] < 0.8
