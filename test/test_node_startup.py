"""Start-up failures end the node with a clear message and a non-zero exit code."""
from __future__ import annotations

import subprocess

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from ros_helpers import REPO, node_command  # noqa: E402

from mfaranet_ros.inference.backends import BACKENDS  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def run_node(*ros_args, timeout=90):
    res = subprocess.run(node_command(*ros_args), capture_output=True, text=True,
                         timeout=timeout, cwd=str(REPO))
    return res.returncode, res.stdout + res.stderr


def test_missing_weights(tmp_path):
    rc, out = run_node("-p", f"weights:={tmp_path / 'nope.pth'}")
    assert rc != 0
    assert "cannot load checkpoint" in out and "checkpoint not found" in out
    assert "nope.pth" in out and "Traceback" not in out


def test_relative_weights_resolve_against_the_package_models_dir(tmp_path):
    rc, out = run_node("-p", "weights:=does_not_exist_here.pth")
    assert rc != 0
    assert str(REPO / "models" / "does_not_exist_here.pth") in out


def test_corrupt_weights(tmp_path):
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    rc, out = run_node("-p", f"weights:={bad}")
    assert rc != 0
    assert "cannot load checkpoint" in out and "not a readable PyTorch checkpoint" in out


def test_mismatched_weights(tmp_path):
    import torch

    wrong = tmp_path / "wrong.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3, 3)}}, wrong)
    rc, out = run_node("-p", f"weights:={wrong}")
    assert rc != 0 and "cannot load checkpoint" in out and "wrong.pth" in out


@pytest.mark.parametrize("overrides,needles", [
    (["overlay_alpha:=2.0", "qos_depth:=0", "label_resolution:=4k"],  # ranges, choices
     ["overlay_alpha: 2.0 is outside [0.0, 1.0]", "qos_depth: 0 is outside [1, 100]",
      "label_resolution: '4k' is not one of camera, network"]),
    (["overlay_alpha:=half", "publish_color:=3", "backend:=tensorflow", "input_size:=[8, 8]"],
     ["overlay_alpha: expected a number, got 'half'",
      "publish_color: expected true or false, got 3",
      f"backend: 'tensorflow' is not one of {', '.join(BACKENDS)}",
      "input_size: expected [] (the checkpoint's size), [0, 0] (full resolution) or [H, W] "
      "with both >= 32, got [8, 8]"]),
])
def test_refused_parameters_end_start_up_in_one_line(overrides, needles):
    """rclpy's own refusals (a value outside the descriptor's range, a wrong type) would
    raise from declare_parameter; every one is named, with its value, in one line."""
    rc, out = run_node(*[a for o in overrides for a in ("-p", o)])
    assert rc == 1
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "[FATAL]" in lines[0] and "invalid parameters: " in lines[0], out
    for needle in needles:
        assert needle in lines[0]


def test_unparsable_ros_arguments_end_start_up_with_the_reason():
    rc, out = run_node("--log-level", "verbose")
    assert rc == 1 and "Traceback" not in out
    assert "cannot start ROS: " in out and "log level" in out


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_during_start_up_exits_cleanly(tmp_path, sig):
    """Ctrl-C (or launch's SIGTERM) while the model loads or warms up, then the same again
    (a terminal and launch both send one): exit 0, no trace."""
    import signal
    import time

    from ros_helpers import NodeProcess, constant_checkpoint, gated_node_command

    ckpt = constant_checkpoint(tmp_path / "car.pth")
    (tmp_path / "arm").touch()       # the warm-up is held until the test is done
    node = NodeProcess(tmp_path, "-p", f"weights:={ckpt}", "-p", "backend:=torch",
                       "-p", "input_size:=[64, 128]",
                       command=gated_node_command(tmp_path / "arm", tmp_path / "gate",
                                                  tmp_path / "entered", "segmentation_node"))
    deadline = time.monotonic() + 60
    while not (tmp_path / "entered").exists():
        assert node.proc.poll() is None and time.monotonic() < deadline, node.output()
        time.sleep(0.02)
    node.proc.send_signal(getattr(signal, sig))
    time.sleep(0.1)
    if node.proc.poll() is None:
        node.proc.send_signal(getattr(signal, sig))
    rc = node.proc.wait(30)
    node.interrupt()
    assert rc == 0, node.output()
    out = node.output()
    assert "Traceback" not in out and "subscribed to" not in out
    assert "context is invalid" not in out


@pytest.mark.parametrize("executable", ["segmentation_node", "segmentation_lifecycle_node"])
def test_signals_while_the_node_module_imports_exit_cleanly(tmp_path, executable):
    """Ctrl-C in the first second, while torch and rclpy are still being imported (before
    the node's own handlers exist), twice as a terminal and launch send it: exit 0, no
    KeyboardInterrupt traceback. Runs the console scripts' entry functions themselves."""
    import signal
    import subprocess
    import sys
    import time

    code = (f"import sys; from mfaranet_ros.ros.entry import {executable}; "
            f"sys.exit({executable}())")
    proc = subprocess.Popen([sys.executable, "-c", code, "--ros-args"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Wait until torch's libraries are being mapped: the entry function has installed its
    # handlers and the node module's imports are under way (they take seconds more).
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and proc.poll() is None:
        with open(f"/proc/{proc.pid}/maps") as maps:
            if "libtorch" in maps.read():
                break
        time.sleep(0.02)
    for _ in range(2):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
