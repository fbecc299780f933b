#!/usr/bin/env bash
# The torch 2.8 CI leg (JetPack 6.2's torch 2.8.0 with numpy 1.26): builds .venv-torch28 once
# (reused while its requirements are unchanged), shows that `pip install -r requirements.txt`
# keeps the installed torch and numpy, and runs the model's parity test against the official
# outputs, the Segmenter and backend tests and the TensorRT backend's argument tests.
# Arguments go to pytest. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-torch28
PY=$VENV/bin/python
tools=$(grep -E '^(pytest|pytest-timeout)[<>=]' requirements-test.txt)
want=$( (cat requirements-torch28.txt requirements.txt setup.py "$0"; echo "$tools") \
  | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.leg-stamp" 2>/dev/null)" != "$want" ]; then
  echo "building $VENV (torch 2.8.0 CUDA build, about 3 GB; first run: a few minutes) ..."
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$PY" -m pip install -q -r requirements-torch28.txt
  # What a Jetson user runs after installing NVIDIA's torch: it must not replace it. Without
  # the constraints pip upgrades numpy to 2.x for the newest requirements (seen here).
  "$PY" -m pip install -q -r requirements.txt -c requirements-torch28.txt
  # shellcheck disable=SC2086  # one requirement per word
  "$PY" -m pip install -q $tools
  "$PY" -m pip install -q --no-deps -e .
  echo "$want" > "$VENV/.leg-stamp"
fi
"$PY" - <<'PYEOF'
import numpy
import torch
assert torch.__version__.startswith("2.8.0"), f"requirements.txt replaced torch: {torch.__version__}"
assert numpy.__version__.startswith("1.26."), f"numpy is {numpy.__version__}, not 1.26"
print(f"torch 2.8 leg: torch {torch.__version__}, numpy {numpy.__version__} kept")
PYEOF
files=(test/test_model.py test/test_inference.py test/test_backends.py
       test/test_tensorrt_backend.py)
[ $# -gt 0 ] && files=("$@")
exec "$PY" -m pytest -ra --timeout=600 -p no:cacheprovider "${files[@]}"
