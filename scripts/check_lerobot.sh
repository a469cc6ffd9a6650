#!/usr/bin/env bash
# Checks that datasets written by policy.episodes load with LeRobot's own LeRobotDataset.
#   scripts/check_lerobot.sh [DATASET_ROOT ...]   build LeRobot's venv if needed, then check each root
#   scripts/check_lerobot.sh --setup              only build LeRobot's venv (scripts/setup.sh calls this)
#   scripts/check_lerobot.sh --venv               print where that venv lives (built or not) and exit
# Without a DATASET_ROOT a small dataset is written first (project venv, .venv) into a temp dir.
#
# LeRobot lives in a virtual environment of its own, pinned by scripts/lerobot-requirements.txt (why
# those pins: that file). It is kept between runs in
#   ${WAM_CACHE:-~/.cache/wam}/lerobot-venv-<hash of the pins and the Python version>
# so only the first set-up on a machine pays for it (~2 min idle, more when busy; ~6 GB); a change of
# pins builds a new one and removes the old. The venv counts as built only once its .complete stamp
# exists (written last), so a set-up killed midway is rebuilt from scratch next time. Concurrent
# set-ups wait on one lock.
#   LEROBOT_VENV   use this venv instead (no build, no stamp check beyond `import lerobot`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${WAM_PYTHON:-python3}
PROJECT_PY=${WAM_VENV:-.venv}/bin/python
REQS=scripts/lerobot-requirements.txt
CACHE=${WAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wam}
# the key: the pins (comments stripped, so editing the notes rebuilds nothing) and the Python version
KEY=$( { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$REQS"; "$PY" -c 'import sys; print(sys.version)'; } \
       | sha256sum | cut -c1-12)
VENV=${LEROBOT_VENV:-$CACHE/lerobot-venv-$KEY}

if [ "${1:-}" = "--venv" ]; then
    echo "$VENV"
    exit 0
fi

built() {
    if [ -n "${LEROBOT_VENV:-}" ]; then
        "$VENV/bin/python" -c "import lerobot" 2>/dev/null
    else
        [ -f "$VENV/.complete" ]
    fi
}

build() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/lerobot-venv.lock"
    flock 9                                   # another set-up may be building it right now
    if built; then return; fi
    local start=$SECONDS
    echo "[check_lerobot] building LeRobot's venv in $VENV (first time on this machine: ~2 min on an idle one, ~6 GB)"
    rm -rf "$VENV"
    for old in "$CACHE"/lerobot-venv-*; do   # earlier pins: ~6 GB each
        if [ -d "$old" ] && [ "$old" != "$VENV" ]; then rm -rf "$old"; fi
    done
    "$PY" -m venv "$VENV"
    grep -v '^lerobot==' "$REQS" > "$VENV/deps.txt"
    # (pip's "Location ... is ignored" lines are this machine's local indexes lacking a package: noise)
    "$VENV/bin/pip" install -q -r "$VENV/deps.txt" 2>&1 | { grep -v "is ignored: it is neither" || true; }
    "$VENV/bin/pip" install -q --no-deps "$(grep -o '^lerobot==[^ ]*' "$REQS")" 2>&1 \
        | { grep -v "is ignored: it is neither" || true; }
    "$VENV/bin/python" -c "import lerobot.datasets.lerobot_dataset, torchcodec.decoders"
    touch "$VENV/.complete"
    echo "[check_lerobot] LeRobot's venv is ready ($((SECONDS - start)) s)"
}

if ! built; then
    if [ -n "${LEROBOT_VENV:-}" ]; then
        echo "[check_lerobot] LEROBOT_VENV=$VENV has no importable lerobot" >&2
        exit 2
    fi
    build
fi
if [ "${1:-}" = "--setup" ]; then
    exit 0
fi

ROOTS=("$@")
if [ ${#ROOTS[@]} -eq 0 ]; then
    ROOT=$(mktemp -d /tmp/wam-lerobot-check.XXXXXX)/dataset
    echo "[check_lerobot] writing a small dataset into $ROOT"
    MUJOCO_GL=${MUJOCO_GL:-osmesa} "$PROJECT_PY" -m policy.episodes.synthetic --out "$ROOT" --depth
    ROOTS=("$ROOT")
fi
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "$VENV/bin/python" scripts/check_lerobot.py "${ROOTS[@]}"
