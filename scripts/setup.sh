#!/usr/bin/env bash
# Idempotent set-up on Debian/Ubuntu: system packages, a virtual environment in .venv,
# CPU torch (pinned), then this project with its test extras. A second run skips what is done.
#   WAM_TORCH_SPEC  what pip installs for torch (default torch==2.13.0: on our machines pip's own
#                   configuration serves the CPU build; elsewhere add PyTorch's CPU wheel index with
#                   --index-url to avoid the multi-GB CUDA build).
#                   GPU users: set it to their CUDA build, e.g.
#                   WAM_TORCH_SPEC="torch --index-url <the CUDA wheel index from pytorch.org>"
#   WAM_VENV        where the virtual environment lives (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${WAM_VENV:-.venv}
TORCH_SPEC=${WAM_TORCH_SPEC:-torch==2.13.0}
PY=${WAM_PYTHON:-python3}

apt_pkgs="libusb-1.0-0 libudev1 libosmesa6 libgl1 ffmpeg chromium fonts-dejavu-core iproute2 g++"   # g++: inductor (torch.compile on the CPU) compiles C++
# Debian's own python3 has no venv module until python3-venv is installed.
command -v "$PY" >/dev/null 2>&1 || apt_pkgs="$apt_pkgs python3 python3-venv"
command -v "$PY" >/dev/null 2>&1 && ! "$PY" -c "import ensurepip, venv" 2>/dev/null && apt_pkgs="$apt_pkgs python3-venv"
missing=""
for p in $apt_pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "[setup] installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

[ -x "$VENV/bin/python" ] || { echo "[setup] creating $VENV"; "$PY" -m venv "$VENV"; }
stamp="$VENV/.installed-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "[setup] installing $TORCH_SPEC and the project into $VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q $TORCH_SPEC
    "$VENV/bin/pip" install -q -e ".[test,piper]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi

# LeRobot's own venv, for the test that loads edited datasets with LeRobot's LeRobotDataset
# (tests/policy/episodes/test_edit.py). Kept in ~/.cache/wam between runs, keyed by the pins in
# scripts/lerobot-requirements.txt: ~2 min (idle machine) the first time, 0.5 s after. WAM_LEROBOT=0 skips.
if [ "${WAM_LEROBOT:-1}" != 0 ]; then
    bash scripts/check_lerobot.sh --setup || echo "[setup] LeRobot's venv could not be built (see above): the" \
        "LeRobot check in tests/policy/episodes/test_edit.py will skip, or fail under CI"
fi
