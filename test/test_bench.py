"""`mfaranet build-engine` and `mfaranet bench` (single and multi-camera), on tiny sizes;
the benchmark package's statistics, backend[:precision] parser and process environment."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from mfaranet_ros.bench import child_env, parse_backend, parse_backends, street_frame, summarize
from mfaranet_ros.cli import build_parser, main
from mfaranet_ros.cli_args import network_hw, network_size, parse_input_size, parse_size

SUMMARY_KEYS = {"median_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "fps", "n"}
ROW_KEYS = {"backend", "precision", "description", "input_size", "frame_size", "model",
            "segmenter", "pre_post_ms", "pre_post_pct", "speedup_model", "speedup_segmenter",
            "label_agreement", "error", "precision_choice"}


@pytest.fixture(scope="module")
def bench_checkpoint(request, tiny_checkpoint):
    """The parity tests' checkpoint where it exists (its 64x128 ONNX file is then already
    cached by test_backends.py in the same session), else the random-init one."""
    try:
        return request.getfixturevalue("varied_checkpoint")
    except pytest.skip.Exception:
        return tiny_checkpoint


def test_parse_size():
    assert parse_size("512x1024") == (512, 1024)
    assert parse_size("64X128") == (64, 128)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("512")


def test_one_input_size_syntax_for_every_command():
    """The offline tools and the benchmarks read --input-size alike; the benchmarks only
    refuse 'checkpoint' (they measure at a size given), and both hold the node's minimum."""
    for parse in (parse_input_size, network_size, network_hw):
        assert parse("64x128") == (64, 128)
        with pytest.raises(argparse.ArgumentTypeError, match="32x32 at least"):
            parse("16x128")
    assert parse_input_size(" FULL ") is None and network_size("full") is None
    with pytest.raises(argparse.ArgumentTypeError, match="expected HxW"):
        network_hw("full")
    assert parse_input_size("checkpoint") == "checkpoint"
    with pytest.raises(argparse.ArgumentTypeError, match="'full'"):
        network_size("checkpoint")


def test_summarize_known_data():
    s = summarize([10.0, 20.0, 30.0, 40.0, 1000.0], frames_per_sample=2)
    # Linear interpolation between order statistics: rank q/100 * (n - 1).
    assert s.median_ms == 30.0
    assert s.p90_ms == pytest.approx(40 + 0.6 * 960)
    assert s.p95_ms == pytest.approx(40 + 0.8 * 960)
    assert s.p99_ms == pytest.approx(40 + 0.96 * 960)
    assert s.max_ms == 1000.0 and s.n == 5
    assert s.fps == pytest.approx(2 / 0.030)
    assert set(s.as_dict()) == SUMMARY_KEYS
    assert summarize([5.0]).fps is None           # not a rate unless frames are given
    with pytest.raises(ValueError, match="no samples"):
        summarize([])


def test_backend_pairs():
    pairs = parse_backends(" torch, onnxruntime ,onnxruntime:fp16,tensorrt:fp16")
    assert [(p.backend, p.precision) for p in pairs] == [
        ("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16"),
        ("tensorrt", "fp16")]
    assert pairs[2].label == "onnxruntime:fp16"
    for text, message in (("onnx", "unknown backend 'onnx'"),
                          ("torch:fp8", "unknown precision 'fp8'"),
                          ("torch:", "unknown precision ''"),
                          ("torch,torch:fp32", "torch:fp32 is listed twice"),
                          (" , ", "expected a comma-separated list")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse_backends(text)


def test_backend_pairs_follow_the_inference_package(monkeypatch):
    """A backend or precision added to the inference package is accepted without edits."""
    from mfaranet_ros import names as backends

    assert "newrt" not in backends.BACKENDS and "fp4" not in backends.PRECISIONS
    for pair in ("newrt:fp32", "torch:fp4"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_backend(pair)
    monkeypatch.setattr(backends, "BACKENDS", backends.BACKENDS + ("newrt",))
    monkeypatch.setattr(backends, "PRECISIONS", backends.PRECISIONS + ("fp4",))
    assert parse_backend("newrt:fp4") == ("newrt", "fp4")


def test_bench_rejects_bad_pairs_in_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--backends", "torch,onnxruntime:fp8"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown precision 'fp8'" in err and "fp32" in err and "Traceback" not in err


def test_child_env_is_a_copy():
    before = dict(os.environ)
    env = child_env({"MFARANET_BENCH_TEST": "1"})
    assert env["MFARANET_BENCH_TEST"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert dict(os.environ) == before


def test_street_frame_is_a_scene():
    a, b = street_frame((64, 128)), street_frame((64, 128))
    assert a.shape == (64, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, street_frame((64, 128), index=1))


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


def _check_timed_row(r, base):
    assert set(r) == ROW_KEYS and r["error"] is None
    assert r["input_size"] == [64, 128] and r["frame_size"] == [96, 160]
    for part in ("model", "segmenter"):
        st = r[part]
        assert set(st) == SUMMARY_KEYS
        assert st["n"] == 2 and 0 < st["median_ms"] <= st["p90_ms"] <= st["p99_ms"]
        assert st["p99_ms"] <= st["max_ms"]
        assert st["fps"] == pytest.approx(1e3 / st["median_ms"])
    assert r["speedup_model"] == pytest.approx(
        base["model"]["median_ms"] / r["model"]["median_ms"])
    assert r["pre_post_ms"] > 0 and r["pre_post_pct"] > 0
    # fp32 through another runtime: the same labels but for rare near-ties.
    assert 0.98 <= r["label_agreement"] <= 1.0


def test_bench_single_table_and_json(bench_checkpoint, inference_cache_dir, tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    argv = ["bench", "--weights", str(bench_checkpoint),
            "--backends", "torch,onnxruntime,onnxruntime:fp16,tensorrt:fp16",
            "--input-size", "64x128", "--frame-size", "96x160", "--iterations", "2",
            "--warmup", "0", "--cache-dir", str(inference_cache_dir), "--json", str(out_json)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "torch-eager (baseline)" in out and "onnxruntime" in out
    report = json.loads(out_json.read_text())
    assert {"command", "torch", "machine", "cuda", "single"} <= set(report)
    rows = {(r["backend"], r["precision"]): r for r in report["single"]}
    assert set(rows) == {("torch-eager (baseline)", "fp32"), ("torch", "fp32"),
                         ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("tensorrt", "fp16")}
    base = rows[("torch-eager (baseline)", "fp32")]
    assert base["speedup_model"] == 1.0 and base["label_agreement"] == 1.0
    assert "NCHW" in base["description"]
    for key in (("torch", "fp32"), ("onnxruntime", "fp32")):
        _check_timed_row(rows[key], base)
    assert "channels_last" in rows[("torch", "fp32")]["description"]
    # ONNX Runtime runs fp32 only (on this CPU at least): an error row, not a failed run.
    fp16 = rows[("onnxruntime", "fp16")]
    if fp16["error"] is not None:
        assert set(fp16) == ROW_KEYS and fp16["model"] is None and "unavailable" in out


def test_bench_cameras_leaves_os_environ_alone(bench_checkpoint, inference_cache_dir,
                                               tmp_path, capsys):
    out_json = tmp_path / "cams.json"
    argv = ["bench", "--weights", str(bench_checkpoint), "--cameras", "2",
            "--backends", "onnxruntime", "--input-size", "64x128", "--iterations", "1",
            "--warmup", "0", "--cache-dir", str(inference_cache_dir), "--json", str(out_json)]
    build_parser()   # imports every subcommand: OpenCV edits LD_LIBRARY_PATH on import
    before = dict(os.environ)
    assert main(argv) == 0
    assert dict(os.environ) == before
    out = capsys.readouterr().out
    assert "1 process, batched" in out and "2 processes" in out
    (res,) = json.loads(out_json.read_text())["cameras"]
    assert res["cameras"] == 2 and (res["backend"], res["precision"]) == ("onnxruntime", "fp32")
    assert res["batched"]["processes"] == 1 and res["separate"]["processes"] == 2
    for mode in ("batched", "separate"):
        g = res[mode]
        assert g["frames"] == 2 and g["throughput_fps"] > 0
        assert set(g["latency"]) == SUMMARY_KEYS
        assert g["latency"]["n"] == (1 if mode == "batched" else 2)
        assert g["peak_rss_mb_sum"] > 50           # each process holds torch + the model
        assert len(g["maxrss_mb_per_process"]) == g["processes"]
        assert g["cpu_s_per_frame"] > 0
    q = res["ratios_batched_over_separate"]
    assert q["peak_rss"] == pytest.approx(
        res["batched"]["peak_rss_mb_sum"] / res["separate"]["peak_rss_mb_sum"])
    # One model copy instead of two: clearly less memory.
    assert q["peak_rss"] < 0.8
