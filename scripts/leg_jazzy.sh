#!/usr/bin/env bash
# The Jazzy CI leg: builds .venv-jazzy once (reused while its requirements are unchanged) with
# Jazzy's rclpy 7.1.6 and message wheels from PyPI, checks it really is Jazzy's rclpy, and runs
# the ROS test files over real DDS. Arguments go to pytest. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-jazzy
PY=$VENV/bin/python
tools=$(grep -E '^(pytest|pytest-timeout|mcap|mcap-ros2-support)[<>=]' requirements-test.txt)
# the node's runtime and the sets the ROS tests use: ONNX Runtime, evaluation (bags)
sets=(-r requirements.txt -r requirements-onnxruntime.txt -r requirements-eval.txt)
want=$( (cat requirements-ros-jazzy.txt requirements-torch-cpu.txt requirements.txt \
         requirements-onnxruntime.txt requirements-eval.txt setup.py
         echo "$tools") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.leg-stamp" 2>/dev/null)" != "$want" ]; then
  echo "building $VENV (ROS 2 Jazzy from PyPI; first run: a few minutes) ..."
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$PY" -m pip install -q -r requirements-ros-jazzy.txt -r requirements-torch-cpu.txt
  # shellcheck disable=SC2086  # one requirement per word
  "$PY" -m pip install -q "${sets[@]}" $tools
  "$PY" -m pip install -q --no-deps -e .
  echo "$want" > "$VENV/.leg-stamp"
fi
# Jazzy's try_shutdown takes only the context (uninstall_handlers came after Jazzy branched).
"$PY" - <<'PYEOF'
import inspect
import rclpy
params = inspect.signature(rclpy.try_shutdown).parameters
assert "uninstall_handlers" not in params, "this venv's rclpy is not Jazzy's"
print("Jazzy leg: rclpy from", rclpy.__file__)
PYEOF
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}
files=(test/test_node.py test/test_lifecycle_node.py test/test_node_startup.py
       test/test_node_multicamera.py test/test_node_compressed.py test/test_node_launch.py
       test/test_launch_config.py)
[ $# -gt 0 ] && files=("$@")
exec "$PY" -m pytest -ra --timeout=600 -p no:cacheprovider "${files[@]}"
