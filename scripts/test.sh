#!/usr/bin/env bash
# Sets up the venv (scripts/setup.sh) and runs the test suite; arguments go to pytest, e.g.
# `bash scripts/test.sh test/test_tensorrt_convert.py` runs one file.
# No arguments (CI): ruff, vermin, all of test/, then two legs: every ROS test (marker `ros`)
# with the node on a Humble-like rclpy (`--humble` runs only that), and the Python 3.10 leg
# (scripts/leg_py310.sh: JetPack 6.2's torch, numpy and OpenCV installed by the Jetson command,
# Jazzy's rclpy) in its own venv built once and reused; where no Python 3.10 exists, the Jazzy
# leg (scripts/leg_jazzy.sh) instead (`--legs` runs only the legs). `--fast`: the everyday
# lane, the main suite without `slow` tests.
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0 legs=0
if [ "${1:-}" = --fast ]; then fast=1; shift; fi
if [ "${1:-}" = --legs ]; then legs=1; shift; fi
# The ROS tests again (those marked `ros`: each starts the node in its own process, so a new
# ROS test file is included by its marker), every node process on an rclpy made to look like
# Humble's (test/humble_emulation/sitecustomize.py): `--humble [paths]`. Left out: files that
# test the benchmark and replay tools, twenty lifecycle cycles, and the backends' exports
# through the node (the same node code as the files that stay, with no rclpy call of their own).
HUMBLE=(-m ros test/ --ignore=test/test_node_bench.py --ignore=test/test_live.py
        --ignore=test/test_lifecycle_cycles.py --ignore=test/test_node_confidence.py)
if [ "${1:-}" = --humble ]; then
  shift
  bash scripts/setup.sh
  export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}
  [ $# -gt 0 ] || set -- "${HUMBLE[@]}"
  MFARANET_TEST_EMULATE=humble exec .venv/bin/python -m pytest -ra --timeout=600 "$@"
fi
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

# Python 3.10 is the minimum (ROS 2 Humble's, JetPack 6's): checked statically over every file
# here (ruff's target-version is py310 too); the Python 3.10 leg below runs it for real.
.venv/bin/vermin --quiet --no-tips --violations -t=3.10- mfaranet_ros scripts test setup.py \
  || { echo "vermin: the code above needs a Python newer than 3.10" >&2; exit 1; }

# Each test run gets its own DDS domain so parallel runs on one host do not see each other.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}
if [ $fast = 1 ]; then exec "$PY" -m pytest -ra --timeout=600 -m "not slow" "$@"; fi
if [ $# -gt 0 ]; then exec "$PY" -m pytest -ra --timeout=600 "$@"; fi
# No path given: pytest runs setup.cfg's testpaths (test/), then the legs: the Humble
# emulation (every ROS test again) and Python 3.10, or Jazzy without it (venvs built on first use).
# Every part runs; the run fails if any failed. A leg that cannot run here (exit 77: no Python
# 3.10) is reported as skipped, never as passed. Each part's time is printed (CI: < 30 min).
failed=() skipped=()
run_part() {
  local name=$1 start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  case $rc in
    0) echo "== $name: passed, $((SECONDS - start)) s" ;;
    77) skipped+=("$name"); echo "== $name: SKIPPED" ;;
    *) failed+=("$name"); echo "== $name: FAILED (exit $rc), $((SECONDS - start)) s" ;;
  esac
}
# The Python 3.10 leg's venv (minutes of pip, mostly waiting on the disk) is built beside the
# main suite, in a DDS domain of its own (its build runs both nodes), its log printed after.
build_log=$(mktemp)
ROS_DOMAIN_ID=$(( ROS_DOMAIN_ID % 100 + 10 )) bash scripts/leg_py310.sh --build-only \
  >"$build_log" 2>&1 &
build_pid=$!
[ $legs = 1 ] || run_part "main suite" "$PY" -m pytest -ra --timeout=600
run_part "Humble emulation leg" env MFARANET_TEST_EMULATE=humble "$PY" -m pytest -ra \
  --timeout=600 "${HUMBLE[@]}"
build_rc=0
wait $build_pid || build_rc=$?
echo "== Python 3.10 leg's venv, built beside the suites:"
cat "$build_log"
rm -f "$build_log"
# The Python 3.10 leg runs the Jazzy leg's ROS test files on the same rclpy (7.1.6, its cp310
# wheels): the Jazzy leg runs only where that one is skipped, so Jazzy is never left out.
case $build_rc in
  0) run_part "Python 3.10 leg" bash scripts/leg_py310.sh ;;
  77) skipped+=("Python 3.10 leg"); echo "== Python 3.10 leg: SKIPPED" ;;
  *) failed+=("Python 3.10 leg"); echo "== Python 3.10 leg: FAILED building its venv (exit $build_rc)" ;;
esac
if [[ " ${skipped[*]} " == *" Python 3.10 leg "* ]]; then
  run_part "Jazzy leg (instead of the Python 3.10 leg)" bash scripts/leg_jazzy.sh
fi
if [ ${#skipped[@]} -gt 0 ]; then echo "skipped: ${skipped[*]}" >&2; fi
if [ ${#failed[@]} -gt 0 ]; then echo "failed: ${failed[*]}" >&2; exit 1; fi
