"""``eval-fleet``: Ray equals serial equals eval-bag, faults, resume, gate, cluster path.

Real bags (MCAP and sqlite3) written by the tests, the real Segmenter (a tiny random
checkpoint at 32x64), a real local Ray shared by the whole module, and one real
``ray start --head`` cluster for the ``--address auto`` path.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mfaranet_ros.evaluation.fleet.manifest import ManifestError, parse_manifest
from mfaranet_ros.evaluation.synthbag import LABEL_TOPIC, SyntheticBagSpec, make_synthetic_bag

pytest.importorskip("ray")

SIZE = (32, 64)
NET = "32x64"


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """Two good bags (MCAP 9 frames, sqlite3 6), one truncated, one without labels."""
    root = tmp_path_factory.mktemp("fleet_bags")
    good_a = make_synthetic_bag(root / "a_mcap", SyntheticBagSpec(frames=9, size=SIZE))
    good_b = make_synthetic_bag(root / "b_sqlite", SyntheticBagSpec(
        frames=6, size=SIZE, storage="sqlite3", seed=1))
    trunc = make_synthetic_bag(root / "c_trunc", SyntheticBagSpec(frames=8, size=SIZE,
                                                                  seed=2))
    mcap = Path(trunc["mcap"])
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])       # metadata.yaml still announces 8
    nolabel = make_synthetic_bag(root / "d_nolabel", SyntheticBagSpec(
        frames=3, size=SIZE, labels="none", seed=3))
    return {"good": [good_a["path"], good_b["path"]],
            "bad": [trunc["path"], nolabel["path"]], "root": root}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (2 actors' worth), shut down afterwards."""
    import ray

    from mfaranet_ros.evaluation.fleet.engine_ray import start_ray

    facts = start_ray("local", workers=2)
    yield facts
    ray.shutdown()


def _manifest(bags, with_bad=True, unit_frames=4):
    items = [{"path": bags["good"][0], "tags": ["city", "day"], "skip_first": 1},
             {"path": bags["good"][1], "tags": ["city"]}]
    if with_bad:
        items += [{"path": p, "tags": ["bad"]} for p in bags["bad"]]
    return parse_manifest({"bags": items, "defaults": {"label_topic": LABEL_TOPIC},
                           "unit_frames": unit_frames}, bags["root"])


def _run(tmp_path, name, manifest, tiny_checkpoint, **kw):
    from mfaranet_ros.evaluation.fleet.run import FleetRun, run_fleet
    from mfaranet_ros.model import read_checkpoint

    model = {"weights": str(tiny_checkpoint), "backend": "torch", "device": "cpu",
             "precision": "fp32", "input_size": [32, 64], "pruned": False,
             "cache_dir": None}
    run = FleetRun(manifest=manifest, out=tmp_path / name, model=model, progress=False, **kw)
    return run_fleet(run, read_checkpoint(str(tiny_checkpoint)).metadata)


def _unit_matrices(out: Path):
    return {p.stem: json.loads(p.read_text())["confusion_matrix"]
            for p in sorted((out / "units").glob("*.json"))}


def test_ray_equals_serial_equals_eval_bag(tmp_path, bags, local_ray, tiny_checkpoint):
    from mfaranet_ros.evaluation.fleet.model import load_model
    from mfaranet_ros.evaluation.offline import EvalOptions, evaluate_bag

    manifest = _manifest(bags)
    serial = _run(tmp_path, "serial", manifest, tiny_checkpoint, engine="serial")
    on_ray = _run(tmp_path, "ray", manifest, tiny_checkpoint, engine="ray", workers=2)
    # Windows of 4 frames: 9 -> 3 units, 6 -> 2; the bad bags one unit each.
    assert sorted(serial["units"]) == sorted(on_ray["units"])
    assert len(serial["units"]) == 7
    assert _unit_matrices(tmp_path / "serial") == _unit_matrices(tmp_path / "ray")
    fleet_s, fleet_r = serial["results"]["fleet"], on_ray["results"]["fleet"]
    assert fleet_s["confusion_matrix"] == fleet_r["confusion_matrix"]
    assert fleet_s["miou"] == fleet_r["miou"] and fleet_s["miou"] is not None
    # The faulty bags are reported with their reason; every other unit finished.
    bad = {u: r for u, r in on_ray["units"].items() if r["status"] != "ok"}
    assert len(bad) == 2 and on_ray["results"]["failed_units"] == 2
    reasons = " | ".join(r["reason"] for r in bad.values())
    assert "label" in reasons and "--unit" in next(iter(bad.values()))["rerun"]
    # skip_first: frame 0 of the first bag, counted by reason, never hidden.
    assert fleet_r["skipped"] == {"manifest: skip_first": 1}
    assert fleet_r["frames"] == 9 - 1 + 6
    # eval-bag bag by bag (the first bag without its frame 0) sums to the same matrix.
    seg = load_model({"weights": str(tiny_checkpoint), "backend": "torch", "device": "cpu",
                      "input_size": [32, 64]})
    total = np.zeros((19, 19), np.int64)
    reports = [evaluate_bag(p, tmp_path / f"eb{i}", seg, EvalOptions(
        label_topic=LABEL_TOPIC, write_bag=False, progress=False))
        for i, p in enumerate(bags["good"])]
    for rep in reports:
        total += np.asarray(rep["accuracy"]["confusion_matrix"])
    first_frame = _run(tmp_path, "f0", parse_manifest(
        {"bags": [{"path": bags["good"][0]}], "defaults": {"label_topic": LABEL_TOPIC,
                                                          "skip_last": 8}},
        bags["root"]), tiny_checkpoint, engine="serial")
    total -= np.asarray(first_frame["results"]["fleet"]["confusion_matrix"])
    assert total.tolist() == fleet_r["confusion_matrix"]
    lines = (tmp_path / "ray" / "frames.jsonl").read_text().splitlines()
    assert len(lines) == 9 + 6 and all("bag" in json.loads(line) for line in lines)
    assert (tmp_path / "ray" / "report.md").read_text().count("alone:") == 2
    prov = on_ray["provenance"]
    assert prov["ray"] and len(prov["checkpoint_sha256"]) == 64 and len(prov["bags"]) == 4


def test_a_killed_worker_is_restarted_and_the_result_is_identical(
        tmp_path, bags, local_ray, tiny_checkpoint):
    manifest = _manifest(bags, with_bad=False)
    _run(tmp_path, "serial", manifest, tiny_checkpoint, engine="serial")
    marker = tmp_path / "crashed"
    on_ray = _run(tmp_path, "ray", manifest, tiny_checkpoint, engine="ray", workers=1,
                  crash_once=str(marker))
    assert marker.exists()        # a worker process did die mid-run
    assert _unit_matrices(tmp_path / "serial") == _unit_matrices(tmp_path / "ray")
    assert on_ray["results"]["failed_units"] == 0


def test_resume_redoes_only_missing_units(tmp_path, bags, tiny_checkpoint):
    manifest = _manifest(bags, with_bad=False)
    first = _run(tmp_path, "out", manifest, tiny_checkpoint, engine="serial")
    assert len(first["redone_units"]) == 5
    (tmp_path / "out" / "units" / "0000@4-8.json").unlink()
    again = _run(tmp_path, "out", manifest, tiny_checkpoint, engine="serial", resume=True)
    assert again["redone_units"] == ["0000@4-8"]
    assert again["results"]["fleet"]["confusion_matrix"] == \
        first["results"]["fleet"]["confusion_matrix"]
    # Another configuration (the ignore id) is not reused.
    manifest.ignore_index = 254
    other = _run(tmp_path, "out", manifest, tiny_checkpoint, engine="serial", resume=True)
    assert len(other["redone_units"]) == 5


def _cli(args, tiny_checkpoint):
    from mfaranet_ros.cli import main

    return main(["eval-fleet", *args, "--weights", str(tiny_checkpoint), "--backend",
                 "torch", "--device", "cpu", "--input-size", NET, "--no-progress"])


def test_criteria_exit_codes_and_baseline_deltas(tmp_path, bags, tiny_checkpoint, capsys):
    good = [*bags["good"], "--label-topic", LABEL_TOPIC, "--engine", "serial"]
    (tmp_path / "pass.yaml").write_text("fleet_miou_min: 0.0\nbag_miou_min: 0.0\n"
                                        "class_iou_min: {road: 0.0}\nmax_failed_units: 0\n")
    (tmp_path / "fail.yaml").write_text("fleet_miou_min: 0.99\n")
    assert _cli([*good, "--out", str(tmp_path / "o1"), "--criteria",
                 str(tmp_path / "pass.yaml")], tiny_checkpoint) == 0
    assert _cli([*good, "--out", str(tmp_path / "o2"), "--criteria",
                 str(tmp_path / "fail.yaml")], tiny_checkpoint) == 1
    assert "criterion failed: fleet mIoU" in capsys.readouterr().out
    # Baseline: the same run gives zero deltas; a better baseline fails the drop limit.
    base = tmp_path / "o1" / "fleet.json"
    (tmp_path / "drop.yaml").write_text("baseline: {fleet_miou_drop_max: 0.01}\n")
    assert _cli([*good, "--out", str(tmp_path / "o3"), "--baseline", str(base),
                 "--criteria", str(tmp_path / "drop.yaml")], tiny_checkpoint) == 0
    deltas = json.loads((tmp_path / "o3" / "fleet.json").read_text())["gate"][
        "baseline_deltas"]
    assert deltas["fleet_miou"] == 0.0 and set(deltas["per_bag"].values()) == {0.0}
    better = json.loads(base.read_text())
    better["results"]["fleet"]["miou"] += 0.1
    better["results"]["fleet"]["per_class"]["road"]["iou"] = 1.0
    (tmp_path / "better.json").write_text(json.dumps(better))
    (tmp_path / "drop2.yaml").write_text(
        "baseline: {fleet_miou_drop_max: 0.01, class_iou_drop_max: 0.5}\n")
    assert _cli([*good, "--out", str(tmp_path / "o4"), "--baseline",
                 str(tmp_path / "better.json"), "--criteria", str(tmp_path / "drop2.yaml")],
                tiny_checkpoint) == 1
    out = capsys.readouterr().out
    assert "fleet mIoU fell" in out and "class road: fell" in out
    # Could not be done: one line, exit 2.
    (tmp_path / "bad.yaml").write_text("bags: [{path: nowhere/*.mcap}]\n")
    assert _cli(["--manifest", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "o5")],
                tiny_checkpoint) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bags[0].path: the glob") and err.count("\n") == 1
    assert _cli([*good, "--out", str(tmp_path / "o6"), "--criteria",
                 str(tmp_path / "better.json")], tiny_checkpoint) == 2
    # Failed units fail the gate (exit 1), listed; an explicit limit also stops the run.
    mixed = [bags["good"][0], *bags["bad"], "--label-topic", LABEL_TOPIC, "--engine", "serial"]
    assert _cli([*mixed, "--out", str(tmp_path / "o7")], tiny_checkpoint) == 1
    assert "criterion failed: 2 failed units > 0 (no max_failed_units given)" in \
        capsys.readouterr().out
    assert _cli([*mixed, "--max-failed-units", "1", "--out", str(tmp_path / "o8")],
                tiny_checkpoint) == 1
    assert "failed units > 1 (max_failed_units)" in capsys.readouterr().out
    assert _cli([*mixed, "--max-failed-units", "2", "--out", str(tmp_path / "o9")],
                tiny_checkpoint) == 0
    # ... and means the same in the criteria: two different values are refused.
    assert _cli([*good, "--max-failed-units", "1", "--criteria", str(tmp_path / "pass.yaml"),
                 "--out", str(tmp_path / "o10")], tiny_checkpoint) == 2
    assert "give one value" in capsys.readouterr().err


def test_manifest_errors_name_the_field(bags):
    for data, field in (({"bags": []}, "bags:"),
                        ({"bags": [{"path": bags["good"][0], "tag": ["x"]}]}, "bags[0]"),
                        ({"bags": [{"path": bags["good"][0], "skip_first": -1}]},
                         "bags[0].skip_first"),
                        ({"bags": [{"path": bags["good"][0], "skip_time": [[2, 1]]}]},
                         "bags[0].skip_time[0]"),
                        ({"bags": [{"path": bags["good"][0], "skip_time": 3}]},
                         "bags[0].skip_time"),
                        ({"bags": [bags["good"][0]], "unit_frames": 0}, "unit_frames"),
                        ({"bags": [bags["good"][0]], "bag": 1}, "unknown field")):
        with pytest.raises(ManifestError, match=field.replace("[", r"\[")):
            parse_manifest(data, bags["root"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cluster_path_joins_a_running_head(tmp_path, bags, tiny_checkpoint):
    """``ray start --head`` on 127.0.0.1 with its own ports, then ``--address auto``."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    # Token authentication off: a throw-away cluster on the loopback, for this test only.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_ADDRESS": f"127.0.0.1:{port}"}
    # --block keeps the head in this process group; stopping it by its own pid stops the
    # cluster without `ray stop`, which would also stop every other Ray of this user.
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
         "--object-store-memory", str(128 * 1024 * 1024)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        cmd = [sys.executable, "-m", "mfaranet_ros.cli", "eval-fleet", *bags["good"],
               "--label-topic", LABEL_TOPIC, "--address", "auto", "--out",
               str(tmp_path / "out"), "--weights", str(tiny_checkpoint), "--backend",
               "torch", "--device", "cpu", "--input-size", NET, "--no-progress"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        doc = json.loads((tmp_path / "out" / "fleet.json").read_text())
        assert doc["provenance"]["ray_address"] == "auto"
        assert doc["results"]["failed_units"] == 0 and doc["results"]["fleet"]["frames"] == 15
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def test_skip_time_windows_leave_out_frames_by_time_across_units(tmp_path, bags,
                                                                  tiny_checkpoint):
    """10 Hz bag: [0.15, 0.35) holds frames 2 and 3, [0.8, 5) frame 8; units of 4 frames
    cut the bag at 4 and 8, so the windows meet the units' edges and are still exact."""
    manifest = parse_manifest({"bags": [{"path": bags["good"][0],
                                         "skip_time": [[0.15, 0.35], [0.8, 5]]}],
                               "defaults": {"label_topic": LABEL_TOPIC}, "unit_frames": 4},
                              bags["root"])
    out = _run(tmp_path, "windows", manifest, tiny_checkpoint, engine="serial")
    fleet = out["results"]["fleet"]
    assert fleet["skipped"] == {"manifest: skip_time": 3}
    assert fleet["frames"] == 9 - 3
    frames = [json.loads(line) for line in
              (tmp_path / "windows" / "frames.jsonl").read_text().splitlines()]
    skipped = sorted(f["index"] for f in frames if f.get("skipped") == "manifest: skip_time")
    assert skipped == [2, 3, 8]


def _ray_pids():
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines()
            if "ray" in line and ("raylet" in line or "gcs_server" in line
                                  or "default_worker" in line)}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["serial", "ray"])
def test_ctrl_c_keeps_finished_units_and_resume_completes(tmp_path, tiny_checkpoint, engine):
    """SIGINT once the first unit's result is on disk (30 units of 8 frames): exit 130,
    one line and no traceback, the finished units kept, Ray's processes gone; then
    ``--resume`` redoes only the units that were missing."""
    import time

    bag = make_synthetic_bag(tmp_path / "long", SyntheticBagSpec(frames=240, size=SIZE,
                                                                  seed=5))
    manifest = tmp_path / "fleet.yaml"
    manifest.write_text(json.dumps({"bags": [bag["path"]], "unit_frames": 8,
                                    "defaults": {"label_topic": LABEL_TOPIC}}))
    out = tmp_path / "out"
    before = _ray_pids()
    cmd = [sys.executable, "-m", "mfaranet_ros.cli", "eval-fleet", "--manifest",
           str(manifest), "--out", str(out), "--engine", engine, "--weights",
           str(tiny_checkpoint), "--backend", "torch", "--device", "cpu", "--input-size",
           NET, "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    deadline = time.monotonic() + 240
    while not list((out / "units").glob("*.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no unit finished within 240 s"
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout[-1000:], stderr[-2000:])
    assert "interrupted" in stdout + stderr and "Traceback" not in stderr, stderr[-2000:]
    kept = {p.stem for p in (out / "units").glob("*.json")}
    assert 1 <= len(kept) < 30 and not (out / "fleet.json").exists()
    if engine == "ray":      # the local Ray it started went with it
        deadline = time.monotonic() + 30
        while _ray_pids() - before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _ray_pids() - before, "Ray processes outlived the interrupted run"
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((out / "fleet.json").read_text())
    assert len(doc["units"]) == 30 and doc["results"]["fleet"]["frames"] == 240
    assert set(doc["redone_units"]) == set(doc["units"]) - kept


def test_a_label_map_scores_the_fleet_over_its_classes_as_eval_bag_does(
        tmp_path, bags, tiny_checkpoint, capsys):
    """The manifest's label_map (resolved in the package's config/): the fleet's matrix is
    the sum of eval-bag --label-map's, over the map's classes; a bad map is one line."""
    from mfaranet_ros.evaluation.fleet.model import load_model
    from mfaranet_ros.evaluation.model_args import load_cli_label_map
    from mfaranet_ros.evaluation.offline import EvalOptions, evaluate_bag

    manifest = parse_manifest({"bags": bags["good"], "label_map": "label_maps/navigation.yaml",
                               "defaults": {"label_topic": LABEL_TOPIC}, "unit_frames": 4},
                              bags["root"])
    model = {"weights": str(tiny_checkpoint), "backend": "torch", "device": "cpu",
             "input_size": [32, 64], "label_map": manifest.label_map}
    from mfaranet_ros.evaluation.fleet.run import FleetRun, run_fleet
    from mfaranet_ros.model import read_checkpoint

    doc = run_fleet(FleetRun(manifest=manifest, out=tmp_path / "f", model=model,
                             engine="serial", progress=False),
                    read_checkpoint(str(tiny_checkpoint)).metadata)
    fleet = doc["results"]["fleet"]
    seg = load_model(model)
    lmap = load_cli_label_map("label_maps/navigation.yaml", seg.metadata)
    total = np.zeros((6, 6), np.int64)
    for i, path in enumerate(bags["good"]):
        rep = evaluate_bag(path, tmp_path / f"eb{i}", seg, EvalOptions(
            label_topic=LABEL_TOPIC, write_bag=False, progress=False, label_map=lmap))
        total += np.asarray(rep["accuracy"]["confusion_matrix"])
    assert fleet["confusion_matrix"] == total.tolist()
    assert list(fleet["per_class"]) == ["road", "sidewalk", "obstacle", "person", "vehicle",
                                        "other"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: 9\nclasses: [{id: 0, name: road}]\n")
    assert _cli([*bags["good"], "--label-topic", LABEL_TOPIC, "--engine", "serial",
                 "--label-map", str(bad), "--out", str(tmp_path / "o")], tiny_checkpoint) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "'default'" in err
