#!/usr/bin/env bash
# Sets up ./.venv with everything mfaranet_ros needs (idempotent; fast when nothing changed).
#
# Where ROS 2 is installed and sourced (rclpy imports), the venv sees the system's ROS
# packages (--system-site-packages) and the PyPI ROS wheels are NOT installed: they
# would shadow the real ROS install. Elsewhere the PyPI ROS 2 wheels are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
VENV=${MFARANET_VENV:-$ROOT/.venv}

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: mfaranet_ros needs Python >= 3.10 (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi

ros_system=0
if "$PY" -c 'import rclpy' >/dev/null 2>&1; then ros_system=1; fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv python3-pip >/dev/null
    else
      echo "error: python venv support is missing: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
  if [ $ros_system = 1 ]; then
    echo "ROS 2 found ($(command -v ros2 || echo rclpy importable)): venv uses the system's ROS packages"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi

# requirements-test.txt: the node's runtime (requirements.txt), every optional set
# (requirements-<set>.txt) and the test tools: the tests run everything.
reqs=(requirements-test.txt)
if [ $ros_system = 0 ] && ! "$VENV/bin/python" -c 'import rclpy' >/dev/null 2>&1 || \
   [ -f "$VENV/.ros-pypi" ]; then
  reqs+=(requirements-ros-pypi.txt)
  touch "$VENV/.ros-pypi"
fi
stamp="$VENV/.mfaranet-stamp"
sets=(requirements.txt requirements-onnxruntime.txt requirements-openvino.txt requirements-eval.txt
      requirements-train.txt requirements-fleet.txt)
want=$(cat "${reqs[@]}" "${sets[@]}" requirements-torch-cpu.txt setup.py | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing Python dependencies into $VENV (first run: a few minutes) ..."
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # The pinned CPU torch only where there is none: requirements.txt leaves an installed
  # torch alone (a CUDA or JetPack build stays).
  if ! "$VENV/bin/python" -c 'import torch' >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q -r requirements-torch-cpu.txt
  fi
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  "$VENV/bin/python" -m pip install -q "${args[@]}"
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
MFARANET_VENV="$VENV" bash "$ROOT/scripts/build_vision_msgs.sh"  # vision_msgs/LabelInfo for ~/label_info
