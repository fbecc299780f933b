"""The live path end to end: play-bag -> the node in its own process -> eval-bag --live."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("rclpy")

from ros_helpers import REPO, NodeProcess  # noqa: E402  (sets the test's DDS domain)

from mfaranet_ros.evaluation.synthbag import SyntheticBagSpec, make_synthetic_bag  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SIZE = (64, 128)
FRAMES = 10


def _mfaranet(*args: str, log_path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "mfaranet_ros.cli", *args],
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env,
                            cwd=str(REPO))


def test_play_bag_node_eval_live(tmp_path, tiny_checkpoint):
    from mfaranet_ros.evaluation.offline import EvalOptions, evaluate_bag
    from mfaranet_ros.inference import Segmenter
    from mfaranet_ros.ros.tools.player import PlayOptions, play_bag

    bag = make_synthetic_bag(tmp_path / "drive", SyntheticBagSpec(frames=FRAMES, size=SIZE,
                                                                  rate_hz=10.0, seed=21))
    node = NodeProcess(tmp_path, "-p", f"weights:={tiny_checkpoint}", "-p", "backend:=torch",
                       "-p", "input_size:=[32,64]", "-r", "image:=/camera/image_raw")
    # Neither command is told the camera topic: both take the bag's camera.
    live = _mfaranet("eval-bag", bag["path"], "--live", "--label-topic", "/camera/labels",
                     "--out", str(tmp_path / "live"),
                     "--idle", "2", "--startup-timeout", "90", "--weights",
                     str(tiny_checkpoint), log_path=tmp_path / "live.log")
    try:
        assert node.wait_for_log("subscribed to", 90), node.output()
        # The player runs here (its own process is tested below): it starts once the node
        # and the evaluator both subscribe.
        # The delay covers the node's switch to a reliable subscription (its QoS check
        # runs every 0.5 s) on a busy host: a frame sent before it can be lost.
        played = play_bag(bag["path"], PlayOptions(wait_for_subscribers=2, wait_timeout_s=60,
                                                   start_delay_s=2.0))
        assert played["published"] == FRAMES and played["topic"] == "/camera/image_raw"
        assert live.wait(60) == 0, (tmp_path / "live.log").read_text()
    finally:
        if live.poll() is None:
            live.kill()
        rc = node.interrupt()
    assert rc == 0, node.output()

    report = json.loads((tmp_path / "live" / "report.json").read_text())
    stats = report["live"]
    assert report["status"] == "complete"
    assert stats["frames_sent"] == FRAMES
    assert stats["frames_segmented"] + stats["dropped"] == FRAMES
    assert stats["frames_segmented"] >= 3, (    # a busy 2-core host drops some
        stats, node.output()[-2000:], (tmp_path / "live.log").read_text()[-2000:])
    assert report["frames"]["with_ground_truth"] == stats["frames_segmented"]
    e2e = report["latency_ms"]["end_to_end"]
    assert e2e["count"] == stats["frames_segmented"] and 0 < e2e["p50"] < 5000
    assert "node_inference" in report["latency_ms"]
    assert (tmp_path / "live" / "report.md").is_file()

    # The node's labels score exactly what the offline evaluation scores on those frames:
    # same checkpoint, same backend, same input size.
    seg = Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", input_size=(32, 64))
    offline = evaluate_bag(bag["path"], tmp_path / "offline", seg,
                           EvalOptions(image_topic="/camera/image_raw",
                                       label_topic="/camera/labels", write_bag=False,
                                       progress=False))
    by_stamp = {f["stamp_ns"]: f for f in offline["per_frame"]}
    for frame in report["per_frame"]:
        assert frame["miou"] == pytest.approx(by_stamp[frame["stamp_ns"]]["miou"], abs=1e-9)
        assert frame["pixel_accuracy"] == pytest.approx(
            by_stamp[frame["stamp_ns"]]["pixel_accuracy"], abs=1e-9)


def test_play_bag_rate_and_loop(tmp_path):
    from mfaranet_ros.ros.tools.player import PlayOptions, play_bag

    bag = make_synthetic_bag(tmp_path / "drive", SyntheticBagSpec(frames=5, size=(16, 32),
                                                                  rate_hz=10.0, labels="none"))
    t0 = time.monotonic()
    stats = play_bag(bag["path"], PlayOptions(rate=2.0, loop=True, max_frames=12))
    wall = time.monotonic() - t0
    assert stats["published"] == 12 and not stats["interrupted"]
    # 12 frames at 10 Hz x2 (a loop restarts one period after the last frame): 11 gaps of
    # 50 ms = 0.55 s of schedule.
    assert 0.5 <= stats["wall_s"] < 3.0 and wall >= stats["wall_s"]


def test_play_bag_stops_on_ctrl_c(tmp_path):
    import signal

    bag = make_synthetic_bag(tmp_path / "drive", SyntheticBagSpec(frames=3, size=(16, 32),
                                                                  labels="none"))
    log_path = tmp_path / "play.log"
    proc = _mfaranet("play-bag", bag["path"], "--loop", log_path=log_path)
    try:
        deadline = time.monotonic() + 90
        while "playing 3 frames" not in log_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log_path.read_text()
    assert rc == 130, output
    assert "(interrupted)" in output and "Traceback" not in output


def test_live_and_player_check_the_bag_before_starting(tmp_path, capsys):
    """A missing topic or a damaged bag fails before rclpy or any checkpoint is touched."""
    from mfaranet_ros.cli import main

    bag = make_synthetic_bag(tmp_path / "drive", SyntheticBagSpec(frames=2, size=(16, 32)))
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a checkpoint")
    rc = main(["eval-bag", bag["path"], "--live", "--out", str(tmp_path / "live"),
               "--image-topic", "/front/image", "--weights", str(bogus)])
    err = capsys.readouterr().err
    assert rc == 2 and "'/front/image' is not in" in err and "/camera/image_raw" in err, err
    assert not (tmp_path / "live").exists()
    mcap = tmp_path / "drive" / "drive.mcap"
    mcap.write_bytes(mcap.read_bytes()[:-200])
    rc = main(["play-bag", bag["path"]])
    err = capsys.readouterr().err
    assert rc == 2 and "damaged or not a bag" in err and len(err.strip().splitlines()) == 1
