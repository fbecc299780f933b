#!/usr/bin/env bash
# Sets up the venv (scripts/setup.sh) and runs the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Each test run gets its own DDS domain so parallel runs on one host do not see each other.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}
exec .venv/bin/python -m pytest -ra --timeout=600 "$@" test
