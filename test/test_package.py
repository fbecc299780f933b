"""The ament_python package itself: package.xml, the colcon build layout, the CLI entry point."""
from __future__ import annotations

import json
import os
import re
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


# Keys of rosdistro's rosdep/python.yaml the package uses (each checked there; a key
# that does not exist makes `rosdep install` fail for every user).
ROSDEP_PYTHON_KEYS = {"python3-numpy", "python3-opencv", "python3-psutil", "python3-yaml",
                      "python3-tqdm", "python3-pytest"}
# Packages that bring a desktop or a GUI toolkit along: not for a robot's core node.
GUI_PACKAGES = {"rviz2", "rviz_common", "rqt", "rqt_gui", "rqt_image_view", "image_view",
                "python3-matplotlib", "python3-tk", "python3-pil.imagetk", "python3-pyqt5"}


def test_package_xml_pulls_in_no_gui_and_only_known_rosdep_keys():
    root = ET.parse(REPO / "package.xml").getroot()
    run_deps = {e.text for tag in ("exec_depend", "depend") for e in root.findall(tag)}
    assert not run_deps & GUI_PACKAGES, f"GUI run dependencies: {sorted(run_deps & GUI_PACKAGES)}"
    assert not any(d.startswith(("rqt", "rviz")) for d in run_deps), sorted(run_deps)
    python_keys = {e.text for e in root.iter() if e.text and e.text.startswith("python3-")}
    assert python_keys <= ROSDEP_PYTHON_KEYS, sorted(python_keys - ROSDEP_PYTHON_KEYS)


def _setup_requirements():
    """setup.py's install_requires and extras_require, as setup.py computes them (in a
    fresh interpreter)."""
    script = ("import json, runpy, setuptools\n"
              "seen = {}\n"
              "setuptools.setup = lambda **kw: seen.update(kw)\n"
              "runpy.run_path('setup.py')\n"
              "print(json.dumps([seen['install_requires'], seen['extras_require']]))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _names(requirements):
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


#: the runtime's pip names -> the rosdep keys package.xml gives them (torch: pip only)
ROSDEP_OF = {"numpy": "python3-numpy", "opencv-python-headless": "python3-opencv",
             "pyyaml": "python3-yaml"}
#: what only evaluation, training or fleet evaluation use: never the node's runtime
NOT_RUNTIME = {"cityscapesscripts", "matplotlib", "tqdm", "rosbags", "ray"}


def test_install_sets_agree_in_setup_py_package_xml_and_the_installer():
    """One list per set: setup.py's extras read requirements[-<set>].txt, the installer
    knows the same sets, and package.xml's rosdep keys are the runtime's."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import install_runtime
    finally:
        sys.path.remove(str(REPO / "scripts"))
    install_requires, extras = _setup_requirements()
    # only extras: a console script of `colcon build --symlink-install` checks
    # install_requires at start-up, and JetPack's OpenCV is no pip distribution
    assert install_requires == ["setuptools"]
    assert set(extras) == {"runtime", *install_runtime.SETS}
    for name, files in install_runtime.SETS.items():
        from_files = [r for f in files for r in install_runtime.read_set(f)]
        assert sorted(set(extras[name])) == sorted(set(from_files)), name
    runtime = _names(extras["runtime"])
    assert runtime == {"torch", *ROSDEP_OF}, sorted(runtime)
    assert not runtime & NOT_RUNTIME
    assert "ray" in _names(extras["fleet"]) and "rosbags" in _names(extras["fleet"])
    root = ET.parse(REPO / "package.xml").getroot()
    python_keys = {e.text for e in root.findall("exec_depend") if e.text.startswith("python3-")}
    assert python_keys == set(ROSDEP_OF.values()), sorted(python_keys)
    # the tests install everything: requirements-test.txt includes every set
    test_reqs = (REPO / "requirements-test.txt").read_text()
    for f in {"requirements.txt", *(f"requirements-{n}.txt" for n in
                                    ("onnxruntime", "openvino", "eval", "train", "fleet"))}:
        assert f"-r {f}" in test_reqs, f


# needs rclpy, but not marked `ros`: its node runs on the installed rclpy as it is, so the
# Humble emulation leg (which selects by that marker) would only repeat it
@pytest.mark.slow
@pytest.mark.parametrize("managed", [False, True], ids=["plain", "managed"])
def test_node_imports_no_evaluation_or_training_package(managed):
    """Both nodes, run for real (scripts/node_imports.py: labels come back for a published
    frame), import nothing of the evaluation, training or test sets from the package's
    own code."""
    pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")
    pytest.importorskip("lifecycle_msgs", reason="needs lifecycle_msgs")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    command = [sys.executable, str(REPO / "scripts" / "node_imports.py"), "--timeout", "240"]
    out = subprocess.run(command + (["--managed"] if managed else []), env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "labels: 160x120 mono8" in out.stdout
    imported = out.stdout.split(" imported: ", 1)[1].splitlines()[0].split(", ")
    assert "torch" in imported and "rclpy" in imported


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
        ".venv*", ".git", "out", "build", "install", "log", "__pycache__", "*.egg-info"))
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
    index = install / "share" / "ament_index" / "resource_index" / "packages"
    assert (index / "mfaranet_ros").is_file()
    for folder in ("launch", "config", "models"):
        def names(d: Path):
            return sorted(p.name for p in d.iterdir() if p.is_file()) if d.is_dir() else []
        shipped, installed = names(REPO / folder), names(share / folder)
        assert installed == shipped, folder


# Names of documents that live outside the repository; built from parts so that this file
# does not match itself.
_OUTSIDE = re.compile("|".join([r"\b(?:MFARANET|ENVIRONMENT|PERFORMANCE|STYLE)\.md\b",
                                r"shared/" + "docs", r"\.\./" + "shared", r"\b[Ii]ssue \d+"]))
_TEXT = ("*.py", "*.md", "*.yaml", "*.xml", "*.sh", "*.cfg", "*.txt", "*.rviz")


def _repository_text_files():
    for folder in ("mfaranet_ros", "test", "config", "launch", "scripts", "docs", "models"):
        for pattern in _TEXT:
            yield from (REPO / folder).rglob(pattern)
    yield from (REPO / name for name in ("README.md", "package.xml", "setup.py", "setup.cfg"))


def test_repository_stands_alone():
    """No pointer to a document or an issue outside the repository; docs/ links resolve."""
    found = []
    for path in _repository_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _OUTSIDE.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
    for page in ("architecture", "model", "performance", "environment"):
        assert (REPO / "docs" / f"{page}.md").is_file(), page
    for path in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\bdocs/([\w-]+\.md)", path.read_text()):
            assert (REPO / "docs" / target).is_file(), f"{path.name} points to docs/{target}"


HEAVY = ("torch", "onnxruntime", "openvino", "nncf", "ray", "cv2", "rclpy", "matplotlib",
         "rosbags", "onnx", "tensorrt", "torch_tensorrt")


def test_help_of_every_command_imports_no_torch():
    """``mfaranet --help`` and ``mfaranet COMMAND --help`` for every command, in a fresh
    interpreter: none of the heavy packages is imported (the parsers take their choices
    from ``mfaranet_ros.names``; the packages' names load on first use)."""
    script = (
        "import sys, contextlib, io\n"
        "from mfaranet_ros.cli import build_parser, main\n"
        "parser = build_parser()\n"
        "sub = next(a for a in parser._actions if a.dest == 'command')\n"
        "for argv in [['--help']] + [[c, '--help'] for c in sub.choices]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as e:\n"
        "            assert e.code == 0, (argv, e.code)\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_readme_lists_every_command_once():
    """The README's table of ``mfaranet`` subcommands is complete and lists no old one."""
    from mfaranet_ros.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = (REPO / "README.md").read_text()
    table = text[text.index("## The `mfaranet` command"):]
    table = table[:table.index("\n## ")]
    listed = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert sorted(listed) == sorted(sub.choices)


def test_python310_leg_without_python310_says_so_and_is_skipped(tmp_path):
    """No Python 3.10 anywhere it looks: one line, exit 77 (scripts/test.sh: skipped), never
    a silent pass."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "sha256sum", "cut", "grep", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv")}
    if Path("/usr/bin/python3.10").exists() or Path("/usr/local/bin/python3.10").exists():
        pytest.skip("this machine has a system Python 3.10")
    out = subprocess.run([str(bin_dir / "bash"), str(REPO / "scripts" / "leg_py310.sh")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 77, out.stdout + out.stderr
    assert out.stdout.strip().startswith("Python 3.10 leg: SKIPPED: no Python 3.10 found")
    assert len(out.stdout.strip().splitlines()) == 1


def test_a_command_without_its_install_set_names_the_set(tmp_path):
    """`mfaranet make-bag` where rosbags is not installed (a machine with the node's runtime
    only): one line naming the set to install, exit 2, no traceback."""
    script = ("import sys\n"
              "class NotInstalled:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.partition('.')[0] == 'rosbags':\n"
              "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
              "sys.meta_path.insert(0, NotInstalled())\n"
              "from mfaranet_ros.cli import main\n"
              f"sys.exit(main(['make-bag', '--frames', '1', {str(tmp_path / 'bag')!r}]))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "error: mfaranet make-bag needs rosbags, which is not installed: pip install -r "
        "requirements-eval.txt (or python3 scripts/install_runtime.py --with eval)")
    assert "Traceback" not in out.stderr
