#!/usr/bin/env bash
# Sets up the venv (scripts/setup.sh) and runs the test suite; arguments go to pytest, e.g.
# `bash scripts/test.sh test/test_tensorrt_convert.py` runs one file (default: all of test/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python

# The TensorRT convertibility tests dry-run torch-tensorrt's own conversion pipeline. Where
# torch has no CUDA, its Python sources come from torch-tensorrt-rtx: installed here only,
# never on top of a CUDA torch or a real torch-tensorrt, which it would shadow.
trt_reqs=requirements-tensorrt-check.txt
trt_stamp=.venv/.tensorrt-check-stamp
trt_want=$(sha256sum "$trt_reqs" | cut -d' ' -f1)
if [ "$(cat "$trt_stamp" 2>/dev/null)" != "$trt_want" ]; then
  trt_decision=$("$PY" - <<'PYEOF'
import importlib.metadata
import importlib.util

import torch

def installed(dist):
    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False

if torch.version.cuda is not None:
    print(f"torch {torch.__version__} has CUDA: install the torch-tensorrt built for it")
elif not torch.__version__.startswith("2.13."):
    print(f"torch {torch.__version__}: torch-tensorrt-rtx 2.13.0 would replace it")
elif importlib.util.find_spec("torch_tensorrt") and not installed("torch-tensorrt-rtx"):
    print("another torch-tensorrt is installed")
else:
    print("install")
PYEOF
)
  if [ "$trt_decision" = install ]; then
    echo "installing torch-tensorrt-rtx for the TensorRT convertibility tests (about 300 MB) ..."
    "$PY" -m pip install -q -r "$trt_reqs"
    echo "$trt_want" > "$trt_stamp"
  else
    echo "not installing torch-tensorrt-rtx: $trt_decision"
  fi
fi

# The linter first: a style or likely-bug finding fails the run in seconds (ruff.toml).
"$PY" -m ruff check --quiet . || { echo "ruff found the problems above (fix them, or run" \
  ".venv/bin/ruff check --fix . for the fixable ones)" >&2; exit 1; }

# Each test run gets its own DDS domain so parallel runs on one host do not see each other.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}
# No path given: pytest runs setup.cfg's testpaths (test/).
exec "$PY" -m pytest -ra --timeout=600 "$@"
