"""``eval-bag`` end to end with the real Segmenter on tiny bags the tests write."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mfaranet_ros.evaluation.bags import BagError, BagReader
from mfaranet_ros.evaluation.offline import OUTPUT_BAG_NAME, EvalOptions, evaluate_bag
from mfaranet_ros.evaluation.synthbag import SyntheticBagSpec, make_synthetic_bag

SIZE = (64, 128)
NET = (32, 64)


@pytest.fixture(scope="module")
def segmenter(tiny_checkpoint):
    from mfaranet_ros.inference import Segmenter

    return Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", input_size=NET)


def _read_mcap(path):
    """{topic: [(log_time, schema name, decoded message)]} by the independent readers."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out = {}
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            out.setdefault(channel.topic, []).append((message.log_time, schema.name, decoded))
    return out


def _pixels(msg):
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    channels = {"mono8": 1, "rgb8": 3}[msg.encoding]
    return data[:, : msg.width * channels].reshape(msg.height, msg.width, channels).squeeze()


def test_eval_bag_mcap_label_topic(tmp_path, segmenter):
    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=5, size=SIZE, seed=11))
    report = evaluate_bag(bag["path"], tmp_path / "out", segmenter,
                          EvalOptions(label_topic="/camera/labels", progress=False))
    assert report["status"] == "complete"
    assert report["bag"]["image_topic"] == "/camera/image_raw"   # found on its own
    assert report["frames"] == {"processed": 5, "with_ground_truth": 5,
                                "without_ground_truth": 0}
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["accuracy"]["miou"] == report["accuracy"]["miou"]
    for stage in ("preprocess", "inference", "postprocess", "total"):
        s = report["latency_ms"][stage]
        assert s["count"] == 5 and 0 <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert report["throughput"]["segmenter_fps"] > 0
    for name in ("report.md", "per_class_iou.png", "latency_histogram.png",
                 "overlay_strip.png"):
        assert (tmp_path / "out" / name).is_file(), name
    assert cv2.imread(str(tmp_path / "out" / "overlay_strip.png")) is not None
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| road |" in md and "mIoU" in md and "## Latency" in md

    # The output bag, read by the independent mcap + mcap-ros2-support readers.
    msgs = _read_mcap(tmp_path / "out" / OUTPUT_BAG_NAME / f"{OUTPUT_BAG_NAME}.mcap")
    assert set(msgs) == {"/camera/image_raw", "/mfaranet/labels", "/mfaranet/color",
                         "/mfaranet/overlay", "/mfaranet/ground_truth/color",
                         "/mfaranet/latency", "/mfaranet/label_info"}
    with BagReader(bag["path"]) as reader:
        frames = list(reader.images("/camera/image_raw"))
    # The class map, once, before the first labels, as the node latches it on ~/label_info.
    (t_info, schema, info), = msgs.pop("/mfaranet/label_info")
    assert schema == "vision_msgs/msg/LabelInfo" and t_info == frames[0].log_time_ns
    names = list(segmenter.metadata.class_names)
    assert [(c.class_id, c.class_name) for c in info.class_map] == \
        [*enumerate(names), (255, "unlabeled")]
    for topic, entries in msgs.items():
        assert len(entries) == 5, topic
        # Same receive times and header stamps as the input frames.
        assert [t for t, _, _ in entries] == [f.log_time_ns for f in frames], topic
        assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                for _, _, m in entries] == [f.stamp_ns for f in frames], topic
    assert msgs["/mfaranet/latency"][0][1] == "diagnostic_msgs/msg/DiagnosticArray"
    keys = [kv.key for kv in msgs["/mfaranet/latency"][0][2].status[0].values]
    assert keys == ["preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"]
    np.testing.assert_array_equal(_pixels(msgs["/camera/image_raw"][2][2]), frames[2].image)
    # The labels in the bag are what the Segmenter says about that frame.
    labels = _pixels(msgs["/mfaranet/labels"][2][2])
    np.testing.assert_array_equal(labels, segmenter.segment(frames[2].image).labels)
    palette = np.asarray(segmenter.metadata.palette, np.uint8)
    np.testing.assert_array_equal(_pixels(msgs["/mfaranet/color"][2][2]), palette[labels])


def test_metrics_equal_cityscapesscripts_on_the_segmenters_predictions(tmp_path, segmenter):
    """The report's IoUs are what cityscapesscripts computes on the same predictions."""
    from test_metrics import _cityscapes_eval

    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=3, size=SIZE, seed=12))
    report = evaluate_bag(bag["path"], tmp_path / "out", segmenter,
                          EvalOptions(label_topic="/camera/labels", progress=False))
    msgs = _read_mcap(tmp_path / "out" / OUTPUT_BAG_NAME / f"{OUTPUT_BAG_NAME}.mcap")
    preds = [_pixels(m) for _, _, m in msgs["/mfaranet/labels"]]
    with BagReader(bag["path"]) as reader:
        gts = [f.image for f in reader.images("/camera/labels", mono=True)]
    (tmp_path / "cs").mkdir()
    theirs = _cityscapes_eval(tmp_path / "cs", preds, gts)
    ours = report["accuracy"]
    for name, entry in ours["per_class"].items():
        expected = theirs["classScores"][name]
        if np.isnan(expected):
            assert entry["iou"] is None, name
        else:
            assert entry["iou"] == pytest.approx(expected, abs=1e-12), name
    assert ours["miou"] == pytest.approx(theirs["averageScoreClasses"], abs=1e-12)


@pytest.mark.parametrize("storage,compressed,labels", [
    ("sqlite3", True, "folder-index"),
    ("ros1", False, "folder-stamp"),
])
def test_eval_bag_other_storages_and_folder_truth(tmp_path, segmenter, storage, compressed,
                                                  labels):
    path = tmp_path / ("in.bag" if storage == "ros1" else "in")
    bag = make_synthetic_bag(path, SyntheticBagSpec(frames=3, size=SIZE, seed=13,
                                                    storage=storage, compressed=compressed,
                                                    labels=labels),
                             gt_folder=tmp_path / "gt")
    report = evaluate_bag(bag["path"], tmp_path / "out", segmenter,
                          EvalOptions(gt_folder=str(tmp_path / "gt"), progress=False))
    assert report["status"] == "complete"
    assert report["bag"]["image_type"] == ("sensor_msgs/msg/CompressedImage" if compressed
                                           else "sensor_msgs/msg/Image")
    assert report["frames"]["with_ground_truth"] == 3
    assert f"by {labels.split('-')[1]}" in report["bag"]["ground_truth"]
    msgs = _read_mcap(tmp_path / "out" / OUTPUT_BAG_NAME / f"{OUTPUT_BAG_NAME}.mcap")
    # The input goes into the output bag as it was stored (compressed stays compressed).
    assert msgs[bag["image_topic"]][0][1] == report["bag"]["image_type"]
    assert len(msgs["/mfaranet/overlay"]) == 3


def test_ctrl_c_leaves_valid_bag_and_partial_report(tmp_path, segmenter):
    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=6, size=SIZE, seed=14))

    def interrupt_after_two(done):
        if done == 2:
            raise KeyboardInterrupt   # what Ctrl-C raises in the loop

    report = evaluate_bag(bag["path"], tmp_path / "out", segmenter,
                          EvalOptions(label_topic="/camera/labels", progress=False),
                          on_frame=interrupt_after_two)
    assert report["status"] == "interrupted"
    assert report["frames"]["processed"] == 2
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["status"] == "interrupted" and len(on_disk["per_frame"]) == 2
    assert "INTERRUPTED" in (tmp_path / "out" / "report.md").read_text()
    msgs = _read_mcap(tmp_path / "out" / OUTPUT_BAG_NAME / f"{OUTPUT_BAG_NAME}.mcap")
    assert len(msgs["/mfaranet/labels"]) == 2
    with BagReader(tmp_path / "out" / OUTPUT_BAG_NAME) as out:   # metadata.yaml too
        assert out.message_count("/mfaranet/overlay") == 2


def test_cli_missing_topic_and_corrupt_bag(tmp_path, capsys, tiny_checkpoint):
    from mfaranet_ros.cli import main

    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=1, size=SIZE))
    rc = main(["eval-bag", bag["path"], "--out", str(tmp_path / "o1"), "--image-topic",
               "/front/image", "--weights", str(tiny_checkpoint), "--backend", "torch",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "'/front/image' is not in" in err and "/camera/image_raw" in err
    assert "/camera/labels" in err

    mcap = tmp_path / "in" / "in.mcap"
    mcap.write_bytes(mcap.read_bytes()[:-200])
    rc = main(["eval-bag", bag["path"], "--out", str(tmp_path / "o2"), "--weights",
               str(tiny_checkpoint), "--backend", "torch", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "damaged or not a bag" in err


def test_ground_truth_of_another_size_is_refused(tmp_path, segmenter):
    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=1, size=SIZE,
                                                               labels="folder-index"),
                             gt_folder=tmp_path / "gt")
    cv2.imwrite(str(tmp_path / "gt" / "000000.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(BagError, match="10x10 but the image is 128x64"):
        evaluate_bag(bag["path"], tmp_path / "out", segmenter,
                     EvalOptions(gt_folder=str(tmp_path / "gt"), progress=False))
    # The failure is recorded in a report as well.
    assert json.loads((tmp_path / "out" / "report.json").read_text())["status"] == "failed"


def test_several_image_topics_need_a_choice(tmp_path, segmenter):
    from mfaranet_ros.evaluation.bags import BagReader, BagWriter

    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=1, size=SIZE))
    # A camera and a ".../labels" topic: the camera is the image topic.
    report = evaluate_bag(bag["path"], tmp_path / "out", segmenter,
                          EvalOptions(progress=False, write_bag=False))
    assert report["bag"]["image_topic"] == "/camera/image_raw"
    # Two cameras: the user must choose.
    with BagReader(bag["path"]) as src, BagWriter(tmp_path / "two") as dst:
        for frame in src.images("/camera/image_raw"):
            dst.write_frame("/left/image_raw", frame)
            dst.write_frame("/right/image_raw", frame)
    with pytest.raises(BagError, match="several image topics") as err:
        evaluate_bag(tmp_path / "two", tmp_path / "out2", segmenter,
                     EvalOptions(progress=False))
    assert "/left/image_raw" in str(err.value) and "--image-topic" in str(err.value)


def test_sigint_to_the_command_stops_between_frames(tmp_path, tiny_checkpoint):
    """A real Ctrl-C (SIGINT) to ``mfaranet eval-bag``: valid MCAP, partial report, rc 130."""
    import re
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    frames = 60
    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=frames, size=SIZE))
    log_path = tmp_path / "eval.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mfaranet_ros.cli", "eval-bag", bag["path"], "--out",
             str(tmp_path / "out"), "--label-topic", "/camera/labels", "--weights",
             str(tiny_checkpoint), "--backend", "torch", "--input-size", "32x64"],
            stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO))
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None:
                done = [int(n) for n in re.findall(rf"(\d+)/{frames}", log_path.read_text())]
                if done and max(done) >= 2:
                    break
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log_path.read_text()
    assert rc == 130, output
    assert "interrupted:" in output and "stopping after this frame" in output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "interrupted"
    done = report["frames"]["processed"]
    assert 2 <= done < frames
    msgs = _read_mcap(tmp_path / "out" / OUTPUT_BAG_NAME / f"{OUTPUT_BAG_NAME}.mcap")
    assert len(msgs.pop("/mfaranet/label_info")) == 1
    assert {len(v) for v in msgs.values()} == {done}   # every frame written whole


def test_input_size_option_reads_the_checkpoints_size(tmp_path, tiny_checkpoint):
    import argparse

    import torch

    from mfaranet_ros.cli_args import parse_input_size
    from mfaranet_ros.evaluation.model_args import load_segmenter
    from mfaranet_ros.model import MFARANet, cityscapes_metadata, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path / "sized.pth"
    save_checkpoint(path, MFARANet(19), cityscapes_metadata(source="test", input_size=[32, 64]))
    assert parse_input_size("checkpoint") == "checkpoint"
    assert parse_input_size("full") is None
    assert parse_input_size("48x96") == (48, 96)
    with pytest.raises(argparse.ArgumentTypeError, match="expected HxW"):
        parse_input_size("big")

    # The default, 'checkpoint': the recorded size, or full resolution where none is.
    def load(weights, text):
        args = argparse.Namespace(weights=str(weights), backend="torch", device="cpu",
                                  precision="fp32", input_size=parse_input_size(text),
                                  pruned=False, cache_dir=str(tmp_path / "cache"))
        seg, _, reason = load_segmenter(args)
        return seg.input_size, reason

    assert load(path, "checkpoint") == ((32, 64), "32x64, recorded in the checkpoint")
    size, why = load(tiny_checkpoint, "checkpoint")
    assert size is None and "records no input size" in why
    assert load(path, "full")[0] is None
    assert load(path, "48x96")[0] == (48, 96)


def test_eval_bag_default_input_size_is_the_checkpoints(tmp_path, capsys, caplog):
    import logging

    import torch

    from mfaranet_ros.cli import main
    from mfaranet_ros.model import MFARANet, cityscapes_metadata, save_checkpoint

    torch.manual_seed(0)
    weights = tmp_path / "sized.pth"
    save_checkpoint(weights, MFARANet(19), cityscapes_metadata(source="test",
                                                               input_size=[32, 64]))
    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=1, size=SIZE))
    with caplog.at_level(logging.INFO):
        rc = main(["eval-bag", bag["path"], "--out", str(tmp_path / "out"), "--weights",
                   str(weights), "--backend", "torch", "--no-progress", "--no-bag"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["model"]["input_size"] == [32, 64]
    assert report["model"]["input_size_reason"] == "32x64, recorded in the checkpoint"
    assert "network input 32x64, recorded in the checkpoint" in caplog.text
    assert "(32x64, recorded in the checkpoint)" in (tmp_path / "out" / "report.md").read_text()


def _bogus_weights(tmp_path):
    """A weights file that would fail to load: an error about it means the model came first."""
    path = tmp_path / "bogus.pth"
    path.write_bytes(b"not a checkpoint")
    return str(path)


@pytest.mark.parametrize("problem", ["missing topic", "damaged file", "missing label topic",
                                     "missing gt folder"])
def test_bag_is_checked_before_the_model(tmp_path, capsys, problem):
    """Bad inputs fail on the bag, with unloadable weights never touched."""
    import time

    from mfaranet_ros.cli import main

    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=2, size=SIZE))
    extra = {"missing topic": ["--image-topic", "/front/image"],
             "missing label topic": ["--label-topic", "/front/labels"],
             "missing gt folder": ["--gt-folder", str(tmp_path / "nowhere")]}.get(problem, [])
    if problem == "damaged file":
        mcap = tmp_path / "in" / "in.mcap"
        mcap.write_bytes(mcap.read_bytes()[:-200])
    t0 = time.perf_counter()
    rc = main(["eval-bag", bag["path"], "--out", str(tmp_path / "out"), "--weights",
               _bogus_weights(tmp_path), "--no-progress", *extra])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: "), err
    assert "checkpoint" not in err and "bogus" not in err, err
    expected = {"missing topic": "'/front/image' is not in",
                "damaged file": "damaged or not a bag",
                "missing label topic": "label topic '/front/labels' is not in",
                "missing gt folder": "ground-truth folder not found"}[problem]
    assert expected in err, err
    if "topic" in problem:
        assert "/camera/image_raw" in err and "/camera/labels" in err   # the bag's topics
    else:
        assert len(err.strip().splitlines()) == 1, err
    assert elapsed < 10, elapsed
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_good_bag_then_reaches_the_weights(tmp_path, capsys):
    """The same command on a sound bag fails on the weights: they are checked after all."""
    from mfaranet_ros.cli import main

    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=1, size=SIZE))
    rc = main(["eval-bag", bag["path"], "--out", str(tmp_path / "out"), "--weights",
               _bogus_weights(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "is not a readable PyTorch checkpoint" in err, err
    rc = main(["eval-bag", bag["path"], "--out", str(tmp_path / "out"), "--weights",
               str(tmp_path / "absent.pth"), "--no-progress"])
    assert rc == 2 and "weights not found" in capsys.readouterr().err


def test_evaluation_runs_without_ros():
    """evaluation/ never imports ros/ (nor rclpy): the layers point down only."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import mfaranet_ros.evaluation as evaluation

    package = Path(evaluation.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                ros = name.startswith(("mfaranet_ros.ros", "..ros", "rclpy", "sensor_msgs"))
                # The command line is the one exception: play-bag and --live import
                # the ROS modules inside their functions.
                lazy = path.name == "cli.py" and node.col_offset > 0
                assert not ros or lazy, f"{path.name} imports {name}"
    code = ("import sys, importlib, pkgutil, mfaranet_ros.evaluation as e\n"
            "for m in pkgutil.iter_modules(e.__path__):\n"
            "    importlib.import_module('mfaranet_ros.evaluation.' + m.name)\n"
            "bad = [m for m in sys.modules if m.startswith(('rclpy', 'mfaranet_ros.ros'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rerun_without_ground_truth_leaves_no_stale_accuracy(tmp_path, segmenter):
    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=2, size=SIZE))
    evaluate_bag(bag["path"], tmp_path / "out", segmenter,
                 EvalOptions(label_topic="/camera/labels", progress=False))
    assert (tmp_path / "out" / "per_class_iou.png").is_file()
    report = evaluate_bag(bag["path"], tmp_path / "out", segmenter,
                          EvalOptions(image_topic="/camera/image_raw", progress=False))
    assert report["accuracy"] is None and report["frames"]["with_ground_truth"] == 0
    assert not (tmp_path / "out" / "per_class_iou.png").exists()
    assert "no ground truth" in (tmp_path / "out" / "report.md").read_text()
    assert len(_read_mcap(tmp_path / "out" / OUTPUT_BAG_NAME /
                          f"{OUTPUT_BAG_NAME}.mcap")["/mfaranet/labels"]) == 2


def test_eval_bag_with_a_label_map_scores_the_maps_classes(tmp_path, segmenter):
    """--label-map navigation.yaml: labels, colour, label_info and every figure are over
    the map's six classes; the confusion matrix equals one computed here from the plain
    run's labels and the ground truth, each mapped by a table built from the YAML."""
    import yaml

    from mfaranet_ros.evaluation.model_args import load_cli_label_map

    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=4, size=SIZE, seed=5))
    plain = evaluate_bag(bag["path"], tmp_path / "plain", segmenter,
                         EvalOptions(label_topic="/camera/labels", progress=False))
    lmap = load_cli_label_map("label_maps/navigation.yaml", segmenter.metadata)
    mapped = evaluate_bag(bag["path"], tmp_path / "mapped", segmenter,
                          EvalOptions(label_topic="/camera/labels", progress=False,
                                      label_map=lmap))
    doc = yaml.safe_load(open(lmap.source))
    out_ids = {c["name"]: c["id"] for c in doc["classes"]}
    table = np.full(256, 255, np.uint8)
    for i, name in enumerate(segmenter.metadata.class_names):
        table[i] = out_ids[doc["mapping"][name]] if name in doc["mapping"] else doc["default"]
    plain_bag = _read_mcap(tmp_path / "plain" / OUTPUT_BAG_NAME / f"{OUTPUT_BAG_NAME}.mcap")
    mapped_bag = _read_mcap(tmp_path / "mapped" / OUTPUT_BAG_NAME / f"{OUTPUT_BAG_NAME}.mcap")
    with BagReader(bag["path"]) as reader:
        truth = [f.image for f in reader.images("/camera/labels", mono=True)]
    expected = np.zeros((6, 6), np.int64)
    for (_, _, p), (_, _, m), gt in zip(plain_bag["/mfaranet/labels"],
                                        mapped_bag["/mfaranet/labels"], truth):
        pred = table[_pixels(p)]
        np.testing.assert_array_equal(_pixels(m), pred)       # the bag's labels are mapped
        want = table[gt]
        keep = want != 255
        np.add.at(expected, (want[keep], pred[keep]), 1)
    assert np.asarray(mapped["accuracy"]["confusion_matrix"]).tolist() == expected.tolist()
    names = [c["name"] for c in sorted(doc["classes"], key=lambda c: c["id"])]
    assert list(mapped["accuracy"]["per_class"]) == names
    colours = {c["id"]: c["colour"] for c in doc["classes"]}
    _, _, color = mapped_bag["/mfaranet/color"][1]
    _, _, labels = mapped_bag["/mfaranet/labels"][1]
    lab = _pixels(labels)
    for class_id in np.unique(lab):
        assert (_pixels(color)[lab == class_id] == colours[int(class_id)]).all()
    (_, _, info), = mapped_bag["/mfaranet/label_info"]
    assert [(c.class_id, c.class_name) for c in info.class_map] == \
        [*enumerate(names), (255, "unlabeled")]
    assert plain["accuracy"]["miou"] != mapped["accuracy"]["miou"]


def test_eval_bag_bad_label_map_is_one_line(tmp_path, capsys, tiny_checkpoint):
    from mfaranet_ros.cli import main

    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=2, size=SIZE))
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: 0\nclasses: [{id: 0, name: road}]\nmapping: {roadway: road}\n")
    rc = main(["eval-bag", bag["path"], "--out", str(tmp_path / "o"), "--weights",
               str(tiny_checkpoint), "--backend", "torch", "--input-size", "32x64",
               "--no-progress", "--label-map", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(bad) in err and "unknown model class 'roadway'" in err


def test_output_bags_label_info_is_the_real_vision_msgs_type(tmp_path, segmenter):
    """The bytes in the output bag deserialize as the built vision_msgs/LabelInfo, so
    ``ros2 bag play`` republishes a message the Nav2 layer's subscription accepts."""
    msgs = pytest.importorskip("vision_msgs.msg")
    from rclpy.serialization import deserialize_message

    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=1, size=SIZE))
    evaluate_bag(bag["path"], tmp_path / "out", segmenter, EvalOptions(progress=False))
    with BagReader(tmp_path / "out" / OUTPUT_BAG_NAME) as out:
        reader = out.reader
        conns = [c for c in reader.connections if c.topic == "/mfaranet/label_info"]
        (_, _, raw), = list(reader.messages(connections=conns))
    info = deserialize_message(bytes(raw), msgs.LabelInfo)
    assert [(c.class_id, c.class_name) for c in info.class_map][-1] == (255, "unlabeled")
    assert len(info.class_map) == len(segmenter.metadata.class_names) + 1
    assert info.header.frame_id == "camera"
