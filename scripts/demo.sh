#!/usr/bin/env bash
# Sets up the venv (scripts/setup.sh) and runs the built-in demo. Extra args go to `mfaranet demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mfaranet demo "$@"
