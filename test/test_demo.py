"""``mfaranet demo`` on a tiny drive: generate once, evaluate, report, say how to watch."""
from __future__ import annotations

import json

from mfaranet_ros.cli import main


def _demo(tmp_path, checkpoint, frames):
    return main(["demo", "--out", str(tmp_path / "demo"),
                 "--bag", str(tmp_path / "bags" / "drive"),
                 "--frames", str(frames), "--size", "64x128", "--weights", str(checkpoint),
                 "--backend", "torch", "--input-size", "32x64", "--no-progress"])


def test_demo_generates_once_and_reports(tmp_path, capsys, tiny_checkpoint):
    assert _demo(tmp_path, tiny_checkpoint, 3) == 0
    out = capsys.readouterr().out
    assert "Generating the synthetic driving bag" in out
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["status"] == "complete" and report["frames"]["processed"] == 3
    assert report["frames"]["with_ground_truth"] == 3
    assert report["model"]["backend"] == "torch" and report["model"]["input_size"] == [32, 64]
    miou = report["accuracy"]["miou"]
    assert f"mIoU {100 * miou:.1f} %" in out
    assert f"{report['throughput']['segmenter_fps']:.1f} FPS" in out
    for name in ("report.md", "per_class_iou.png", "latency_histogram.png", "overlay_strip.png",
                 "segmented_bag/segmented_bag.mcap", "segmented_bag/metadata.yaml"):
        assert (tmp_path / "demo" / name).is_file(), name
    # Where the results are, and how to watch them.
    assert f"Results in {tmp_path / 'demo'}/" in out
    assert "segmented_bag.mcap" in out and "Foxglove" in out and "ros2 bag play" in out
    assert "segmentation_node --ros-args -r image:=/camera/image_raw" in out
    assert "mfaranet play-bag" in out and "--live" in out

    # A second run reuses the bag; a different drive regenerates it.
    assert _demo(tmp_path, tiny_checkpoint, 3) == 0
    out = capsys.readouterr().out
    assert "Using the synthetic driving bag" in out and "Generating" not in out
    again = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert again["accuracy"]["miou"] == miou


def test_demo_bag_is_regenerated_only_when_needed(tmp_path, capsys):
    from mfaranet_ros.demo import _ensure_bag
    from mfaranet_ros.evaluation.synthbag import SyntheticBagSpec

    bag = tmp_path / "bags" / "drive"
    spec = SyntheticBagSpec(frames=2, size=(32, 64))
    assert _ensure_bag(bag, spec, regenerate=False, progress=False)["reused"] is False
    assert _ensure_bag(bag, spec, regenerate=False, progress=False)["reused"] is True
    assert _ensure_bag(bag, spec, regenerate=True, progress=False)["reused"] is False
    other = SyntheticBagSpec(frames=3, size=(32, 64))          # a different drive
    summary = _ensure_bag(bag, other, regenerate=False, progress=False)
    assert summary["reused"] is False and summary["frames"] == 3
    # A bag damaged since (here: its data file gone) is made again, not reused.
    (bag / "drive.mcap").unlink()
    assert _ensure_bag(bag, other, regenerate=False, progress=False)["reused"] is False
