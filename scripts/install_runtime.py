#!/usr/bin/env python3
"""Installs the node's runtime into this Python, keeping the machine's torch, numpy and OpenCV.

    python3 scripts/install_runtime.py                     # what both nodes import
    python3 scripts/install_runtime.py --with onnxruntime  # plus sets: onnxruntime, openvino,
                                                           # bench, eval, train, fleet
    python3 scripts/install_runtime.py --dry-run           # say what it would do
    python3 scripts/install_runtime.py -- --user           # after --: arguments for pip

For a Jetson (JetPack's torch, numpy 1.x and OpenCV) and any machine whose torch, numpy or
OpenCV come from the system. Before installing it looks at what is there:

- torch must be importable (this script never installs one: JetPack's, a CUDA build or the
  CPU build of requirements-torch-cpu.txt comes first); it is pinned at its version so no
  package can replace it;
- numpy 1.x stays 1.x: constraints-numpy1.txt caps numpy below 2 and the packages whose newest
  releases need numpy 2 (opencv-python-headless, onnx, onnxruntime) at releases that accept
  it; pip upgrades nothing that is already installed and good enough;
- where a ``cv2`` imports (JetPack's, ROS's python3-opencv, a wheel), no OpenCV wheel is
  installed beside it.

Then it runs pip once, checks the three again and says what it kept. The sets are the files
``requirements.txt`` (the runtime) and ``requirements-<set>.txt``, the same lists as
setup.py's extras. It installs neither ROS 2 nor this package (``colcon build`` does that).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
NUMPY1_CONSTRAINTS = REPO / "constraints-numpy1.txt"
#: set name -> the requirement files it installs (setup.py's extras, from the same files)
SETS = {
    "onnxruntime": ["onnxruntime"],
    "openvino": ["openvino"],
    "bench": ["onnxruntime", "openvino"],
    "eval": ["eval"],
    "train": ["train"],
    "fleet": ["eval", "fleet"],
}
OPENCV_WHEELS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                 "opencv-contrib-python-headless")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

# Run in a fresh interpreter, before and after pip: what this Python has, as JSON. Nothing
# heavy is imported: versions come from the packages' metadata, except for a cv2 that pip
# does not know (JetPack's), which is imported to learn its version.
_PROBE = r"""
import importlib.metadata as md, importlib.util as iu, json, os

def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None

def where(module):
    spec = iu.find_spec(module)
    return os.path.dirname(spec.origin) if spec and spec.origin else None

out = {"torch": version("torch"), "torch_at": where("torch"),
       "numpy": version("numpy"), "numpy_at": where("numpy"),
       "cv2_at": where("cv2"), "cv2_wheels": {}, "cv2": None, "cv2_error": None}
for dist in %r:
    if version(dist):
        out["cv2_wheels"][dist] = version(dist)
if out["cv2_at"]:
    try:
        import cv2
        out["cv2"] = cv2.__version__
        out["cv2_at"] = os.path.dirname(cv2.__file__)
    except Exception as exc:  # what a broken cv2 raises varies (ImportError, AttributeError)
        out["cv2_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
out["numpy_wheel"] = out["numpy"] is not None
if out["numpy"] is None and out["numpy_at"]:
    import numpy
    out["numpy"] = numpy.__version__
print(json.dumps(out))
""" % (OPENCV_WHEELS,)


class InstallError(Exception):
    """What stops the installation, in one line."""


def probe(python: str) -> Dict:
    """torch, numpy and cv2 as ``python`` sees them (versions and where they are)."""
    res = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise InstallError(f"could not inspect {python}: {tail}")
    return json.loads(res.stdout)


def requirement_name(line: str) -> Optional[str]:
    """The distribution a requirement line names, normalised; None for comments, options."""
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    match = _NAME.match(line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def requirement_lines(path: Path) -> List[str]:
    """A requirements or constraints file's lines, without comments and pip options."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def read_set(name: str) -> List[str]:
    """The requirements of ``runtime`` (requirements.txt) or a set (requirements-<name>.txt)."""
    return requirement_lines(
        REPO / ("requirements.txt" if name == "runtime" else f"requirements-{name}.txt"))


def plan(sets: List[str], have: Dict) -> Dict:
    """The requirements and constraints to install ``sets`` over what ``have`` describes,
    and one line per package kept."""
    if have["torch"] is None and have["torch_at"] is None:
        raise InstallError(
            "this Python has no torch: install the build for this machine first (a Jetson: "
            "NVIDIA's torch for your JetPack, see docs/jetson.md; a CPU-only machine: "
            "pip install -r requirements-torch-cpu.txt), then run this again")
    if have["cv2_at"] and have["cv2_error"]:
        raise InstallError(
            f"cv2 at {have['cv2_at']} does not import ({have['cv2_error']}): repair that "
            "OpenCV first (a wheel installed beside it would shadow it)")
    files = ["runtime"] + [f for s in sets for f in SETS[s]]
    requirements: List[str] = []
    for f in dict.fromkeys(files):
        requirements += [r for r in read_set(f) if r not in requirements]
    constraints: List[str] = []
    kept: List[str] = []

    requirements = [r for r in requirements if requirement_name(r) != "torch"]
    if have["torch"] is not None:
        constraints.append(f"torch=={have['torch']}")
        kept.append(f"torch {have['torch']} (pinned: nothing may replace it)")
    else:
        kept.append(f"torch at {have['torch_at']} (no pip metadata: left alone)")

    if have["cv2"] is not None:
        requirements = [r for r in requirements if requirement_name(r) not in OPENCV_WHEELS]
        source = (", ".join(f"{d} {v}" for d, v in have["cv2_wheels"].items())
                  or "not a pip wheel")
        kept.append(f"OpenCV {have['cv2']} at {have['cv2_at']} ({source}): "
                    "no OpenCV wheel installed beside it")

    numpy = have["numpy"]
    if numpy is not None and not have.get("numpy_wheel", True):
        # a pip requirement on numpy would put a wheel in front of it
        requirements = [r for r in requirements if requirement_name(r) != "numpy"]
        kept.append(f"numpy {numpy} at {have['numpy_at']} (no pip metadata: left alone)")
    if numpy is not None and numpy.split(".")[0] == "1":
        constraints += requirement_lines(NUMPY1_CONSTRAINTS)
        kept.append(f"numpy {numpy}: stays 1.x ({NUMPY1_CONSTRAINTS.name})")
    elif numpy is not None and have.get("numpy_wheel", True):
        kept.append(f"numpy {numpy}")
    return {"requirements": requirements, "constraints": constraints, "kept": kept}


def check_kept(before: Dict, after: Dict) -> List[str]:
    """What pip changed that it must not have: torch, numpy's major version, cv2."""
    moved = []
    if before["torch"] is not None and after["torch"] != before["torch"]:
        moved.append(f"torch {before['torch']} became {after['torch']}")
    if before["numpy"] is not None and after["numpy"] is not None and \
            before["numpy"].split(".")[0] != after["numpy"].split(".")[0]:
        moved.append(f"numpy {before['numpy']} became {after['numpy']}")
    if before["cv2"] is not None and (after["cv2_at"] != before["cv2_at"] or
                                      after["cv2_wheels"] != before["cv2_wheels"]):
        new = sorted(set(after["cv2_wheels"]) - set(before["cv2_wheels"]))
        moved.append(f"cv2 was {before['cv2_at']}, now {after['cv2_at']}"
                     + (f" (new wheels: {', '.join(new)}; pip uninstall them)" if new else ""))
    return moved


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="install_runtime.py", description=__doc__.split("\n\n")[0],
        epilog="Arguments after -- go to pip (e.g. -- --user).")
    parser.add_argument("--with", dest="sets", default="",
                        help="comma-separated sets besides the runtime: " + ", ".join(SETS))
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would be installed and kept; install nothing")
    parser.add_argument("pip_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in args.sets if s not in SETS]
    if unknown:
        parser.error(f"unknown set {', '.join(unknown)}: choose from {', '.join(SETS)}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if sys.version_info < (3, 10):
        print(f"error: mfaranet_ros needs Python >= 3.10 (this is {sys.version.split()[0]})",
              file=sys.stderr)
        return 2
    try:
        before = probe(sys.executable)
        todo = plan(args.sets, before)
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sets = ", ".join(["runtime", *args.sets])
    print(f"installing {sets} into {sys.executable}")
    for line in todo["kept"]:
        print(f"  keeping {line}")
    print(f"  requirements: {' '.join(todo['requirements'])}")
    if todo["constraints"]:
        print(f"  constraints: {' '.join(todo['constraints'])}")
    with tempfile.TemporaryDirectory(prefix="mfaranet-install-") as tmp:
        req, cons = Path(tmp, "requirements.txt"), Path(tmp, "constraints.txt")
        req.write_text("\n".join(todo["requirements"]) + "\n")
        cons.write_text("\n".join(todo["constraints"]) + "\n")
        command = [sys.executable, "-m", "pip", "install", "-r", str(req), "-c", str(cons),
                   *args.pip_args]
        if args.dry_run:
            print("dry run: would run pip install with the requirements and constraints above"
                  + (f" and {' '.join(args.pip_args)}" if args.pip_args else ""))
            return 0
        if subprocess.run([sys.executable, "-m", "pip", "--version"],
                          capture_output=True).returncode != 0:
            print(f"error: {sys.executable} has no pip: sudo apt install python3-pip",
                  file=sys.stderr)
            return 2
        if subprocess.run(command).returncode != 0:
            print("error: pip failed (above); nothing was checked", file=sys.stderr)
            return 1
    try:
        after = probe(sys.executable)
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    moved = check_kept(before, after)
    if moved:
        print("error: pip changed what it had to keep: " + "; ".join(moved), file=sys.stderr)
        return 1
    kept = [f"torch {after['torch'] or '(no pip metadata)'}"]
    if after["numpy"] is not None:
        was = f", was {before['numpy']}" if before["numpy"] not in (None, after["numpy"]) else ""
        kept.append(f"numpy {after['numpy']}{was}")
    if after["cv2"] is not None:
        kept.append(f"OpenCV {after['cv2']} at {after['cv2_at']}")
    print("done: " + "; ".join(kept))
    return 0


if __name__ == "__main__":
    sys.exit(main())
