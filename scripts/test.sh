#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: unit, process-level and browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python -m pytest -q --durations=15 "$@"   # the slowest tests, to keep the suite short
