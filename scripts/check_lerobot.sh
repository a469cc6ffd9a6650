#!/usr/bin/env bash
# Checks that a dataset written by policy.episodes loads with LeRobot's own LeRobotDataset.
# LeRobot lives in its own virtual environment (it pins versions the project does not need):
#   scripts/check_lerobot.sh [DATASET_ROOT]
#   LEROBOT_VENV   where that environment lives (default /tmp/lerobot-venv)
# Without DATASET_ROOT a small dataset is written first (project venv, .venv) into a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LEROBOT_VENV:-/tmp/lerobot-venv}
PY=${WAM_PYTHON:-python3}
PROJECT_PY=${WAM_VENV:-.venv}/bin/python

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import lerobot" 2>/dev/null; then
    echo "[check_lerobot] creating $VENV (torch first, then lerobot)"
    "$PY" -m venv "$VENV"
    # torch first, the project's pin: lerobot resolves against it where it can. lerobot 0.4.4
    # requires torch<2.11, so pip replaces it with torch 2.10 (a CUDA build, ~8 GB venv); a
    # --no-deps install beside 2.13 was tried and fails (torchvision's ops do not load).
    "$VENV/bin/pip" install -q torch==2.13.0
    "$VENV/bin/pip" install -q lerobot
fi

ROOT=${1:-}
if [ -z "$ROOT" ]; then
    ROOT=$(mktemp -d /tmp/wam-lerobot-check.XXXXXX)/dataset
    echo "[check_lerobot] writing a small dataset into $ROOT"
    MUJOCO_GL=${MUJOCO_GL:-osmesa} "$PROJECT_PY" -m policy.episodes.synthetic --out "$ROOT" --depth
fi
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "$VENV/bin/python" scripts/check_lerobot.py "$ROOT"
