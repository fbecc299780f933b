#!/usr/bin/env bash
# The Python 3.10 CI leg: JetPack 6.2's Python stack as near as this machine gets. Called by
# scripts/test.sh; arguments go to pytest. It builds .venv-py310 once (reused while its
# inputs are unchanged), as a Jetson is set up:
#   1. what a Jetson has before this package: Python 3.10, torch 2.8.0 and numpy 1.26.4 (pip
#      distributions there too: NVIDIA's wheel, numpy 1.x), and an OpenCV that is no pip
#      distribution (JetPack's is built from source): here OpenCV 4.8.0's cv2 module, its
#      pip metadata removed, in a folder of its own put on the path by a .pth file;
#   2. ROS 2 (a Jetson's Humble comes from apt): Jazzy's rclpy 7.1.6 and messages, the cp310
#      wheels of requirements-ros-jazzy.txt, with numpy held where it is, as apt would;
#   3. the Jetson command of docs/jetson.md, as written: python3 scripts/install_runtime.py;
#      then torch, numpy and cv2 must be exactly as before;
#   4. the plain and the managed node, run for real on that runtime alone
#      (scripts/node_imports.py: labels come back; the node imports no evaluation package);
#   5. the sets the tests use (the same command with --with onnxruntime,eval) and the test
#      tools; torch, numpy and cv2 are checked again.
# Then it runs the model's parity with the official outputs, the Segmenter, backend and
# TensorRT-argument tests and the ROS test files (plain and managed node, start-up errors,
# several cameras, compressed input, camera_info, label formats, launch files) over real DDS.
# Where no Python 3.10 exists it says so in one line and exits 77 (automake's code for
# skipped), which scripts/test.sh reports as skipped. `--build-only`: build (or check) the
# venv and stop before the tests (scripts/test.sh builds it beside the main suite).
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=0
if [ "${1:-}" = --build-only ]; then build_only=1; shift; fi
VENV=.venv-py310
PY=$VENV/bin/python

py310=""
for candidate in "${MFARANET_PYTHON310:-}" python3.10 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python3.10 \
    /usr/bin/python3.10 /usr/local/bin/python3.10; do
  [ -n "$candidate" ] || continue
  # a pyenv shim exists even where 3.10 is not selected: it must really run 3.10
  if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 10))' \
      >/dev/null 2>&1; then
    py310=$candidate
    break
  fi
done
if [ -z "$py310" ]; then
  echo "Python 3.10 leg: SKIPPED: no Python 3.10 found (python3.10 on PATH, pyenv's versions/3.10.*, /usr/bin; or set MFARANET_PYTHON310)"
  exit 77
fi

# JetPack 6.2's torch and numpy, and its OpenCV's release (4.8.0)
JETPACK=(torch==2.8.0 numpy==1.26.4)
SYSTEM_OPENCV=opencv-python-headless==4.8.0.76
tools=$(grep -E '^(pytest|pytest-timeout|mcap|mcap-ros2-support)[<>=]' requirements-test.txt)
want=$( (cat requirements.txt requirements-onnxruntime.txt requirements-eval.txt \
         constraints-numpy1.txt requirements-ros-jazzy.txt setup.py scripts/install_runtime.py \
         scripts/leg_py310.sh
         "$py310" --version; echo "$tools") | sha256sum | cut -d' ' -f1)

jetpack() {  # torch, numpy and cv2 as step 1 left them (--record), or as they are now
  "$PY" - "$VENV/jetpack.json" "$@" <<'PYEOF'
import importlib.metadata as md, json, os, sys
import cv2, numpy, torch
now = {"torch": torch.__version__, "numpy": numpy.__version__, "cv2": cv2.__version__,
       "cv2 at": os.path.dirname(os.path.realpath(cv2.__file__)),
       "OpenCV wheels": sorted(d for d in ("opencv-python", "opencv-python-headless",
                                           "opencv-contrib-python",
                                           "opencv-contrib-python-headless")
                               if list(md.distributions(name=d)))}
if sys.argv[2:] == ["--record"]:
    with open(sys.argv[1], "w") as f:
        json.dump(now, f)
else:
    with open(sys.argv[1]) as f:
        before = json.load(f)
    moved = [f"{k} {before[k]} became {now[k]}" for k in now if now[k] != before[k]]
    if moved:
        sys.exit("Python 3.10 leg: the install moved what a Jetson keeps: " + "; ".join(moved))
print(f"Python 3.10 leg: torch {now['torch']}, numpy {now['numpy']}, OpenCV {now['cv2']} from "
      f"{now['cv2 at']} (OpenCV wheels: {', '.join(now['OpenCV wheels']) or 'none'})")
PYEOF
}

export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}
if [ "$(cat "$VENV/.leg-stamp" 2>/dev/null)" != "$want" ]; then
  echo "building $VENV with $py310 ($("$py310" --version)): torch 2.8.0 (CUDA build, about 3 GB)," \
    "numpy 1.26.4, Jazzy's rclpy; first run: a few minutes ..."
  rm -rf "$VENV"
  "$py310" -m venv "$VENV"
  # 1. the Jetson before this package
  "$PY" -m pip install -q "${JETPACK[@]}"
  "$PY" -m pip install -q --no-deps --target "$VENV/system-opencv" "$SYSTEM_OPENCV"
  rm -rf "$VENV"/system-opencv/*.dist-info
  site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  realpath "$VENV/system-opencv" > "$site/system-opencv.pth"
  jetpack --record
  # 2. ROS 2, as apt would put it beside them (numpy held)
  "$PY" -m pip install -q -r requirements-ros-jazzy.txt -c <(printf '%s\n' "${JETPACK[@]}")
  jetpack
  # 3. the Jetson command, as written (docs/jetson.md), with this venv's python3
  PATH="$PWD/$VENV/bin:$PATH" python3 scripts/install_runtime.py
  "$PY" -m pip install -q --no-deps -e .  # colcon build's part on a Jetson
  jetpack
  # 4. both nodes on the runtime alone
  "$PY" scripts/node_imports.py --timeout 300
  "$PY" scripts/node_imports.py --managed --timeout 300
  # 5. what the tests use
  PATH="$PWD/$VENV/bin:$PATH" python3 scripts/install_runtime.py --with onnxruntime,eval
  # shellcheck disable=SC2086  # one requirement per word
  "$PY" -m pip install -q $tools -c <(printf '%s\n' "${JETPACK[@]}")
  echo "$want" > "$VENV/.leg-stamp"
fi
jetpack
[ $build_only = 0 ] || exit 0
# the Jazzy leg's ROS test files are among them (same rclpy 7.1.6): scripts/test.sh runs that
# leg only where this one is skipped
files=(test/test_model.py test/test_inference.py test/test_backends.py
       test/test_tensorrt_backend.py test/test_node.py test/test_lifecycle_node.py
       test/test_node_startup.py test/test_node_multicamera.py test/test_node_compressed.py
       test/test_node_camera_info.py test/test_node_label_format.py test/test_node_launch.py
       test/test_launch_config.py test/test_publish_buffers.py test/test_worker.py)
# Left out here (the main suite runs them): two more exports of the whole network with torch
# 2.8's slow exporter that test the artifact cache's bookkeeping, which no Python version
# changes; the ONNX Runtime parity export stays.
deselect=(--deselect test/test_backends.py::test_a_cached_onnx_file_must_carry_the_key_its_manifest_claims
          --deselect test/test_backends.py::test_onnxruntime_pruned_confidence_unwritable_cache)
if [ $# -gt 0 ]; then files=("$@"); deselect=(); fi
exec "$PY" -m pytest -ra --timeout=600 -p no:cacheprovider "${files[@]}" "${deselect[@]}"
