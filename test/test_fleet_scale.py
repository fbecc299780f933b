"""eval-fleet at a fleet's scale: one pass per bag, exit codes, exact re-runs, provenance,
checked numbers. Real bags written by the tests, the real Segmenter (a tiny random
checkpoint at 32x64), the serial engine (the Ray engine runs the same unit code; the
cluster's placement is in test_fleet_cluster.py)."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from mfaranet_ros.evaluation import bags as bags_module
from mfaranet_ros.evaluation import groundtruth
from mfaranet_ros.evaluation.bags import BagReader
from mfaranet_ros.evaluation.fleet.manifest import parse_manifest
from mfaranet_ros.evaluation.synthbag import LABEL_TOPIC, SyntheticBagSpec, make_synthetic_bag

SIZE = (32, 64)
NET = "32x64"


@pytest.fixture(scope="module")
def long_bag(tmp_path_factory):
    """20 compressed frames at 10 Hz with labels (MCAP)."""
    root = tmp_path_factory.mktemp("long")
    return make_synthetic_bag(root / "drive", SyntheticBagSpec(frames=20, size=SIZE,
                                                               compressed=True, seed=7))


def _model(ckpt, **extra):
    return {"weights": str(ckpt), "backend": "torch", "device": "cpu", "precision": "fp32",
            "input_size": [32, 64], "pruned": False, "cache_dir": None, **extra}


def _run(out, manifest, ckpt, **kw):
    from mfaranet_ros.evaluation.fleet.run import FleetRun, run_fleet
    from mfaranet_ros.model import read_checkpoint

    run = FleetRun(manifest=manifest, out=out, model=_model(ckpt), engine="serial",
                   progress=False, **kw)
    return run_fleet(run, read_checkpoint(str(ckpt)).metadata)


def _cli(args, ckpt):
    from mfaranet_ros.cli import main

    return main(["eval-fleet", *args, "--weights", str(ckpt), "--backend", "torch",
                 "--device", "cpu", "--input-size", NET, "--no-progress"])


def _count_decodes(monkeypatch):
    """Counts every pixel decode (camera frames and labels) the real decoder does."""
    counts = {"image": 0, "label": 0}
    real = bags_module.decode_image

    def counting(msg, msgtype, *, mono=False):
        counts["label" if mono else "image"] += 1
        return real(msg, msgtype, mono=mono)

    monkeypatch.setattr(bags_module, "decode_image", counting)
    monkeypatch.setattr(groundtruth, "decode_image", counting)
    return counts


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "ros1"])
def test_log_times_come_from_the_index_and_equal_the_messages(tmp_path, storage, monkeypatch):
    name = "bag.bag" if storage == "ros1" else "bag"
    bag = make_synthetic_bag(tmp_path / name, SyntheticBagSpec(frames=12, size=SIZE,
                                                              storage=storage, seed=3))
    with BagReader(bag["path"]) as reader:
        expected = [f.log_time_ns for f in reader.images(bag["image_topic"])]
        read = []
        real = type(reader.reader).messages

        def spy(self, *a, **k):       # the real reader, counting what it is asked to read
            read.append(1)
            return real(self, *a, **k)

        monkeypatch.setattr(type(reader.reader), "messages", spy)
        assert reader.log_times(bag["image_topic"]) == expected
        assert read == []           # from the index: no message read
        # A receive-time range reads exactly its frames, numbered from first_index.
        frames = list(reader.images(bag["image_topic"], start_ns=expected[4],
                                    stop_ns=expected[9], first_index=4))
        assert [f.index for f in frames] == [4, 5, 6, 7, 8]
        assert [f.log_time_ns for f in frames] == expected[4:9]


def test_windows_decode_every_frame_and_label_once(tmp_path, long_bag, tiny_checkpoint,
                                                   monkeypatch):
    """20 frames in windows of 6 (6+6+6+2): each frame and each label is decoded once in
    all, as one unit over the whole bag does, and the matrices are equal."""
    base = {"bags": [long_bag["path"]], "defaults": {"label_topic": LABEL_TOPIC}}
    whole = _run(tmp_path / "whole", parse_manifest(base, tmp_path), tiny_checkpoint)
    counts = _count_decodes(monkeypatch)
    windows = _run(tmp_path / "win", parse_manifest({**base, "unit_frames": 6}, tmp_path),
                   tiny_checkpoint)
    assert sorted(windows["units"]) == ["0000@0-6", "0000@12-18", "0000@18-20", "0000@6-12"]
    assert counts == {"image": 20, "label": 20}
    assert windows["results"]["fleet"]["confusion_matrix"] == \
        whole["results"]["fleet"]["confusion_matrix"]
    assert windows["results"]["fleet"]["frames"] == 20
    indices = [json.loads(line)["index"] for line in
               (tmp_path / "win" / "frames.jsonl").read_text().splitlines()]
    assert sorted(indices) == list(range(20))


def test_a_label_recorded_after_its_window_is_still_found(tmp_path, tiny_checkpoint):
    """Labels received 0.25 s after their images (a labelling node's delay): the last
    frames of a window find theirs in the next window's time range."""
    from mfaranet_ros.evaluation.bags import BagWriter
    from mfaranet_ros.synthetic import frame_seed, generate_scene

    path = tmp_path / "late"
    with BagWriter(path, "mcap") as w:
        for i in range(10):
            rgb, labels = generate_scene(frame_seed(0, i), size=SIZE)
            t = 1_700_000_000_000_000_000 + i * 100_000_000
            w.write_image("/camera/image_raw", t, t, "camera", rgb, "rgb8")
            w.write_image(LABEL_TOPIC, t + 250_000_000, t, "camera", labels, "mono8")
    base = {"bags": [str(path)], "defaults": {"label_topic": LABEL_TOPIC}}
    whole = _run(tmp_path / "whole", parse_manifest(base, tmp_path), tiny_checkpoint)
    win = _run(tmp_path / "win", parse_manifest({**base, "unit_frames": 4}, tmp_path),
               tiny_checkpoint)
    assert win["results"]["fleet"]["frames_with_truth"] == 10
    assert win["results"]["fleet"]["confusion_matrix"] == \
        whole["results"]["fleet"]["confusion_matrix"]


def test_an_exception_inside_a_unit_fails_that_unit_only(tmp_path, long_bag, tiny_checkpoint):
    """A backend fault on the third frame (a RuntimeError, as CUDA out of memory raises):
    the unit fails with its type and message, the next unit runs."""
    from mfaranet_ros.evaluation.fleet.model import load_model
    from mfaranet_ros.evaluation.fleet.units import evaluate_unit, plan_units

    class FaultyBackend:          # the real Segmenter, with a fault injected on frame 3
        def __init__(self, segmenter):
            self.inner, self.calls = segmenter, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def segment(self, *a, **k):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.inner.segment(*a, **k)

    units, _ = plan_units(parse_manifest({"bags": [long_bag["path"]], "unit_frames": 10,
                                          "defaults": {"label_topic": LABEL_TOPIC}},
                                         tmp_path))
    seg = FaultyBackend(load_model(_model(tiny_checkpoint)))
    first, second = (evaluate_unit(u, seg) for u in units)
    assert first["status"] == "failed" and first["error_type"] == "RuntimeError"
    assert first["reason"] == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert second["status"] == "ok" and second["frames"] == 10


def test_failed_units_rerun_command_reproduces_them_exactly(tmp_path, long_bag,
                                                            tiny_checkpoint):
    """A window with skips, and a truncated bag's unit: each printed command, run as
    printed, gives the same confusion matrix (and the same failure)."""
    from mfaranet_ros.cli import main

    trunc = make_synthetic_bag(tmp_path / "trunc", SyntheticBagSpec(frames=8, size=SIZE,
                                                                    seed=2))
    mcap = Path(trunc["mcap"])
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    manifest = parse_manifest({"bags": [{"path": long_bag["path"], "skip_first": 2,
                                         "skip_time": [[0.75, 0.95]]}, trunc["path"]],
                               "unit_frames": 8, "defaults": {"label_topic": LABEL_TOPIC}},
                              tmp_path)
    doc = _run(tmp_path / "run", manifest, tiny_checkpoint)
    assert doc["exit_code"] == 1       # a failed unit fails the gate
    units = doc["units"]
    failed = [u for u, r in units.items() if r["status"] != "ok"]
    assert failed == ["0001"]
    for uid in ("0000@0-8", "0000@8-16", "0001"):
        cmd = shlex.split(units[uid]["rerun"])
        assert cmd[:2] == ["mfaranet", "eval-fleet"] and "--weights" in cmd
        assert cmd[cmd.index("--input-size") + 1] == NET
        code = main(cmd[1:] + ["--no-progress"])   # as printed, after "mfaranet"
        assert code == (2 if uid == "0001" else 0)    # 2: alone, no frame evaluated
        out = Path(cmd[cmd.index("--out") + 1])
        again = json.loads((out / "units" / f"{uid}.json").read_text())
        first = json.loads((tmp_path / "run" / "units" / f"{uid}.json").read_text())
        assert again["confusion_matrix"] == first["confusion_matrix"]
        assert again["skipped"] == first["skipped"]
        assert (again["status"], again["reason"]) == (first["status"], first["reason"])
    assert json.loads((tmp_path / "run" / "units" / "0000@8-16.json").read_text())[
        "skipped"] == {"manifest: skip_time": 2}


def test_nothing_to_score_is_exit_2_with_what_to_pass(tmp_path, long_bag, tiny_checkpoint,
                                                      capsys):
    bag = [long_bag["path"], "--engine", "serial"]
    for extra, says in (([], "no label topic was given; pass --label-topic /camera/labels"),
                        (["--label-topic", "/camera/labelz"],
                         "pass --label-topic /camera/labels")):
        out = tmp_path / f"o{len(extra)}"
        assert _cli([*bag, *extra, "--out", str(out)], tiny_checkpoint) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
        assert "Traceback" not in err
        doc = json.loads((out / "fleet.json").read_text())
        assert doc["exit_code"] == 2 and (out / "report.md").is_file()
        if not extra:         # frames were segmented: their latency is reported
            assert doc["results"]["latency_ms"]["total"]["count"] == 20
            assert "## Latency" in (out / "report.md").read_text()


def test_any_other_error_is_one_line_exit_2(tmp_path, long_bag, tiny_checkpoint, capsys):
    """An output folder that is a file: no traceback, one line."""
    (tmp_path / "file").write_text("x")
    assert _cli([long_bag["path"], "--engine", "serial", "--label-topic", LABEL_TOPIC,
                 "--out", str(tmp_path / "file" / "out")], tiny_checkpoint) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize("option", [["--max-failed-units", "-1"],
                                    ["--gpus-per-worker", "-0.5"],
                                    ["--cpus-per-worker", "0"]])
def test_numbers_out_of_range_are_refused(tmp_path, long_bag, tiny_checkpoint, option,
                                          capsys):
    with pytest.raises(SystemExit) as exc:
        _cli([long_bag["path"], *option, "--out", str(tmp_path / "o")], tiny_checkpoint)
    assert exc.value.code == 2 and option[0] in capsys.readouterr().err


def test_baseline_over_other_scoring_is_refused(tmp_path, long_bag, tiny_checkpoint,
                                                capsys):
    good = [long_bag["path"], "--label-topic", LABEL_TOPIC, "--engine", "serial"]
    assert _cli([*good, "--out", str(tmp_path / "base")], tiny_checkpoint) == 0
    base = str(tmp_path / "base" / "fleet.json")
    assert _cli([*good, "--out", str(tmp_path / "mapped"), "--baseline", base,
                 "--label-map", "label_maps/navigation.yaml"], tiny_checkpoint) == 2
    assert "other classes" in capsys.readouterr().err
    manifest = tmp_path / "m.yaml"
    manifest.write_text(json.dumps({"bags": [long_bag["path"]], "ignore_index": 254,
                                    "defaults": {"label_topic": LABEL_TOPIC}}))
    assert _cli(["--manifest", str(manifest), "--engine", "serial", "--baseline", base,
                 "--out", str(tmp_path / "ign")], tiny_checkpoint) == 2
    err = capsys.readouterr().err
    assert "another ignore id (255, this run 254)" in err and not (tmp_path / "ign" /
                                                                   "units").exists()


def test_resume_keys_carry_the_package_version(tmp_path, long_bag, tiny_checkpoint,
                                               monkeypatch):
    import mfaranet_ros

    manifest = parse_manifest({"bags": [long_bag["path"]], "unit_frames": 10,
                               "defaults": {"label_topic": LABEL_TOPIC}}, tmp_path)
    _run(tmp_path / "o", manifest, tiny_checkpoint)
    assert _run(tmp_path / "o", manifest, tiny_checkpoint, resume=True)["redone_units"] == []
    monkeypatch.setattr(mfaranet_ros, "__version__", mfaranet_ros.__version__ + ".post1")
    assert len(_run(tmp_path / "o", manifest, tiny_checkpoint, resume=True)[
        "redone_units"]) == 2


def test_provenance_from_metadata_and_hashes_by_the_units(tmp_path, long_bag,
                                                          tiny_checkpoint):
    from mfaranet_ros.evaluation.fleet.model import file_sha256

    manifest = parse_manifest({"bags": [long_bag["path"]], "unit_frames": 10,
                               "defaults": {"label_topic": LABEL_TOPIC}}, tmp_path)
    plain = _run(tmp_path / "plain", manifest, tiny_checkpoint)["provenance"]["bags"]
    facts = plain[long_bag["path"]]
    assert "sha256" not in facts and facts["messages"] == 20
    assert set(facts["files"]) == {"drive.mcap", "metadata.yaml"}
    assert facts["bytes"] == sum(f["bytes"] for f in facts["files"].values())
    assert len(facts["metadata_yaml_sha256"]) == 64
    hashed = _run(tmp_path / "hashed", manifest, tiny_checkpoint, hash_bags=True)
    sha = hashed["provenance"]["bags"][long_bag["path"]]["sha256"]
    assert sha == {str(Path(long_bag["mcap"])): file_sha256(long_bag["mcap"]),
                   str(Path(long_bag["path"]) / "metadata.yaml"):
                       file_sha256(Path(long_bag["path"]) / "metadata.yaml")}
    # computed by the bag's first unit, not after the run
    unit = json.loads((tmp_path / "hashed" / "units" / "0000@0-10.json").read_text())
    assert unit["bag_sha256"] == sha


def test_cpus_per_worker_come_from_the_nodes_not_the_cluster_total():
    from mfaranet_ros.evaluation.fleet.engine_ray import cpus_per_worker

    # Two actors on a 4-node cluster of 16 cores: a node each, 16 threads; never the
    # cluster's 64 / 2 = 32 threads that oversubscribed a node holding two of them.
    assert cpus_per_worker([16, 16, 16, 16], 2) == 16
    assert cpus_per_worker([16, 16, 16, 16], 8) == 7        # two per node, one CPU left
    assert cpus_per_worker([16, 4], 2) == 7                 # both fit on the big node
    assert cpus_per_worker([3], 2) == 1 and cpus_per_worker([3], 1) == 2   # the local Ray
    assert cpus_per_worker([], 2) == 1 and cpus_per_worker([2], 5) == 1
    for nodes in ([16, 16, 16, 16], [16, 4], [8, 2, 2], [64]):
        for workers in (1, 2, 3, 5, 9):
            r = cpus_per_worker(nodes, workers)
            fit = sorted(nodes, reverse=True)
            fit[0] -= 1
            assert r == 1 or sum(n // r for n in fit) >= workers
