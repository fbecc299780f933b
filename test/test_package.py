"""The ament_python package itself: package.xml, the colcon build layout, the CLI entry point."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_with_runtime_deps():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "mfaranet_ros"
    assert root.findtext("license") == "Apache-2.0"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "python3-numpy",
            "python3-opencv"} <= exec_deps
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}
    assert root.find("export").findtext("build_type") == "ament_python"


def test_ros_wheels_are_kept_apart_from_core_requirements():
    core = (REPO / "requirements.txt").read_text()
    assert "ros-" not in core and "rclpy" not in core
    assert "ros-rclpy" in (REPO / "requirements-ros-pypi.txt").read_text()


def test_cli_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "mfaranet_ros.cli", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for cmd in ("import-official", "demo"):
        assert cmd in out.stdout


@pytest.mark.skipif(shutil.which("colcon") is None and not
                    (Path(sys.executable).parent / "colcon").exists(),
                    reason="colcon is not installed (pip install -r requirements-ros-pypi.txt)")
def test_colcon_build_installs_ros_layout(tmp_path):
    src = tmp_path / "ws" / "src" / "mfaranet_ros"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "out", "build", "install", "log", "__pycache__", "*.egg-info"))
    colcon = shutil.which("colcon") or str(Path(sys.executable).parent / "colcon")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    res = subprocess.run([colcon, "build", "--packages-select", "mfaranet_ros"],
                         cwd=tmp_path / "ws", capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    install = tmp_path / "ws" / "install" / "mfaranet_ros"
    share = install / "share" / "mfaranet_ros"
    assert (install / "lib" / "mfaranet_ros" / "segmentation_node").is_file()
    assert (install / "lib" / "mfaranet_ros" / "segmentation_lifecycle_node").is_file()
    assert (install / "lib" / "mfaranet_ros" / "mfaranet").is_file()
    assert (share / "package.xml").is_file()
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "mfaranet_ros").is_file()
    for folder in ("launch", "config", "models"):
        def names(d: Path):
            return sorted(p.name for p in d.iterdir() if p.is_file()) if d.is_dir() else []
        shipped, installed = names(REPO / folder), names(share / folder)
        assert installed == shipped, folder
