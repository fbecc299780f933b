"""scripts/install_runtime.py: the Jetson command. What it plans from what a Python has, its
one-line refusals, and (slow) a real install into a throwaway venv that has numpy 1.x, a torch
and an OpenCV without pip metadata, as a Jetson has."""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install_runtime.py"
sys.path.insert(0, str(REPO / "scripts"))
import install_runtime  # noqa: E402

sys.path.remove(str(REPO / "scripts"))

#: a Jetson as the probe reports it: NVIDIA's torch, numpy 1.x, JetPack's cv2 (no wheel)
JETSON = {"torch": "2.8.0", "torch_at": "/usr/local/lib/python3.10/dist-packages/torch",
          "numpy": "1.26.4", "numpy_at": "/usr/local/lib/python3.10/dist-packages/numpy",
          "cv2": "4.8.0", "cv2_at": "/usr/lib/python3.10/dist-packages/cv2",
          "cv2_wheels": {}, "cv2_error": None}


def names(requirements):
    return {install_runtime.requirement_name(r) for r in requirements}


def test_plan_on_a_jetson_keeps_torch_numpy1_and_its_opencv():
    todo = install_runtime.plan(["onnxruntime"], JETSON)
    assert names(todo["requirements"]) == {"numpy", "pyyaml", "onnx", "onnxscript",
                                           "onnxruntime", "psutil"}
    assert "torch==2.8.0" in todo["constraints"]
    assert {"numpy<2", "opencv-python-headless<4.12"} <= set(todo["constraints"])
    kept = "\n".join(todo["kept"])
    assert "torch 2.8.0" in kept and "numpy 1.26.4" in kept
    assert "OpenCV 4.8.0 at /usr/lib/python3.10/dist-packages/cv2 (not a pip wheel)" in kept


def test_plan_over_this_python():
    """This interpreter, as the probe sees it: its torch pinned, its cv2 kept."""
    have = install_runtime.probe(sys.executable)
    todo = install_runtime.plan(["eval"], have)
    assert "torch" not in names(todo["requirements"])
    assert {"rosbags", "matplotlib", "tqdm", "cityscapesscripts"} <= names(todo["requirements"])
    if have["torch"]:
        assert f"torch=={have['torch']}" in todo["constraints"]
    if have["cv2"]:
        assert not names(todo["requirements"]) & set(install_runtime.OPENCV_WHEELS)
    numpy1 = (have["numpy"] or "").startswith("1.")
    assert ("numpy<2" in todo["constraints"]) == numpy1


def test_plan_without_numpy_or_opencv_installs_them():
    bare = dict(JETSON, numpy=None, numpy_at=None, cv2=None, cv2_at=None)
    todo = install_runtime.plan([], bare)
    assert names(todo["requirements"]) == {"numpy", "opencv-python-headless", "pyyaml"}
    assert todo["constraints"] == ["torch==2.8.0"]


def test_plan_refuses_without_torch_and_with_a_broken_cv2():
    with pytest.raises(install_runtime.InstallError, match="this Python has no torch"):
        install_runtime.plan([], dict(JETSON, torch=None, torch_at=None))
    broken = dict(JETSON, cv2=None, cv2_error="ImportError: numpy.core.multiarray failed")
    with pytest.raises(install_runtime.InstallError, match="does not import"):
        install_runtime.plan([], broken)


def test_check_kept_names_what_moved():
    after = dict(JETSON, numpy="2.2.6", cv2_wheels={"opencv-python-headless": "4.12.0.88"},
                 cv2_at="/venv/site-packages/cv2")
    moved = install_runtime.check_kept(JETSON, after)
    assert "numpy 1.26.4 became 2.2.6" in moved
    assert any("new wheels: opencv-python-headless" in m for m in moved)
    assert install_runtime.check_kept(JETSON, dict(JETSON, numpy="1.26.4")) == []


def run(python, *args, timeout=120):
    return subprocess.run([str(python), str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_dry_run_says_what_it_keeps_and_installs_nothing():
    out = run(sys.executable, "--dry-run", "--with", "onnxruntime,eval")
    assert out.returncode == 0, out.stderr
    assert "installing runtime, onnxruntime, eval into" in out.stdout
    assert "keeping torch" in out.stdout
    assert "dry run" in out.stdout


def test_bad_set_and_missing_torch_are_one_line_errors(tmp_path):
    out = run(sys.executable, "--with", "onnxruntime,gui")
    assert out.returncode == 2
    assert "unknown set gui: choose from onnxruntime, openvino, bench, eval, train, fleet" \
        in out.stderr
    venv.create(tmp_path / "bare", with_pip=False)
    out = run(tmp_path / "bare" / "bin" / "python")
    assert out.returncode == 2
    assert out.stderr.startswith("error: this Python has no torch: install the build")
    assert len(out.stderr.strip().splitlines()) == 1


def pip(python, *args):
    res = subprocess.run([str(python), "-m", "pip", "install", "-q", *args],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]


def system_torch(side: Path) -> None:
    """This interpreter's torch, linked into ``side`` with its metadata, as a system torch
    (a Jetson's NVIDIA wheel in the system's site-packages) is seen from a venv."""
    try:
        dist = importlib.metadata.distribution("torch")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("needs torch installed beside the tests")
    base = Path(dist.locate_file(""))
    meta = base / f"torch-{dist.version}.dist-info"
    if not meta.is_dir():
        pytest.skip(f"torch's metadata is not at {meta}")
    side.mkdir()
    (side / "torch").symlink_to(base / "torch")
    (side / meta.name).symlink_to(meta)


@pytest.mark.slow
def test_installs_the_runtime_into_a_jetson_like_venv(tmp_path):
    """A venv with numpy 1.26.4, and, as a Jetson's system packages, a torch and OpenCV
    4.10's cv2 without pip metadata on its path: the command installs the runtime and leaves
    all three as they were."""
    env_dir = tmp_path / "jetson"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip(python, "numpy==1.26.4")
    system = tmp_path / "system"
    system_torch(system)
    pip(python, "--no-deps", "--target", str(system), "opencv-python-headless==4.10.0.84")
    for meta in system.glob("opencv*.dist-info"):
        shutil.rmtree(meta)
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "system.pth").write_text(f"{system}\n")
    before = install_runtime.probe(str(python))
    assert before["numpy"] == "1.26.4" and before["cv2_wheels"] == {}
    assert before["torch"] == importlib.metadata.version("torch")

    out = run(python, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "keeping numpy 1.26.4: stays 1.x" in out.stdout
    assert "(not a pip wheel): no OpenCV wheel installed beside it" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("done: torch ")

    after = install_runtime.probe(str(python))
    assert after["torch"] == before["torch"] and after["numpy"] == "1.26.4"
    assert after["cv2_at"] == before["cv2_at"] == str(system / "cv2")
    assert after["cv2_wheels"] == {}
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, check=True).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert "pyyaml" in installed
    assert not installed & {"matplotlib", "tqdm", "rosbags", "cityscapesscripts", "onnx"}


def test_plan_leaves_a_numpy_without_pip_metadata_alone():
    system_numpy = dict(JETSON, numpy="1.21.5", numpy_wheel=False,
                        numpy_at="/usr/lib/python3/dist-packages/numpy")
    todo = install_runtime.plan([], system_numpy)
    assert "numpy" not in names(todo["requirements"])
    assert "numpy<2" in todo["constraints"]
    assert any("numpy 1.21.5 at /usr/lib/python3/dist-packages/numpy (no pip metadata"
               in k for k in todo["kept"])
