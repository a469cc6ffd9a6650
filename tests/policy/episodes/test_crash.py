"""A real recording process killed with SIGKILL loses at most the episode in progress."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from policy.episodes import DatasetReader, DatasetWriter

from .conftest import H, W, record_episode

REPO = Path(__file__).resolve().parents[3]

# Saves `saved` complete episodes, then records episodes back to back forever (saving each after
# 15 frames), printing a line per event so the test can pick the moment to kill it.
RECORDER = """
import sys, numpy as np
from policy.episodes import DatasetWriter
from policy.episodes.synthetic import SyntheticFrames, synthetic_spec, synthetic_state
root, saved = sys.argv[1], int(sys.argv[2])
spec = synthetic_spec(%d, %d)
gen = SyntheticFrames(%d, %d)
w = DatasetWriter(root, spec)
e = 0
while True:
    w.start_episode("lift the cube")
    for t in range(15):
        w.add_frame({c: gen.frame(t, i) for i, c in enumerate(spec.cameras)}, synthetic_state(t), synthetic_state(t))
        if e >= saved:
            print("RECORDING", e, t, flush=True)
    w.save_episode()
    if e < saved:
        w.wait()
        print("SAVED", e, flush=True)
    e += 1
""" % (H, W, H, W)


def _start(root: Path, saved: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", RECORDER, str(root), str(saved)], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)


def _check_consistent(root: Path, at_least: int) -> DatasetReader:
    # LeRobot's loader reads every data/*/*.parquet and meta/episodes/*/*.parquet: all must be whole
    for path in [*root.glob("data/*/*.parquet"), *root.glob("meta/episodes/*/*.parquet")]:
        pq.read_table(path)
    r = DatasetReader(root)
    assert r.num_episodes >= at_least
    for e in r.episodes:   # every visible episode is whole: table, every camera's video
        assert e.length in (5, 15)   # 15 from the recorder, 5 from _resume_and_append
        assert len(r.episode_table(e.index).state) == e.length
        for cam in r.camera_names:
            assert r.frames(e.index, cam).shape == (e.length, H, W, 3)
    return r


def _resume_and_append(root: Path, spec) -> None:
    before = DatasetReader(root).num_episodes
    with DatasetWriter(root, spec) as w:
        assert not list(root.rglob("*partial*")), "leftovers of the killed process were not cleaned"
        assert record_episode(w, 5) == before
    r = _check_consistent_tail(root, before + 1)
    assert r.episodes[-1].length == 5


def _check_consistent_tail(root: Path, n: int) -> DatasetReader:
    r = DatasetReader(root)
    assert r.num_episodes == n
    assert r.frames(n - 1, "head").shape[0] == r.episodes[-1].length
    return r


def test_sigkill_mid_episode(tmp_path, spec):
    root = tmp_path / "ds"
    proc = _start(root, saved=2)
    try:
        for line in proc.stdout:
            if line.startswith("RECORDING 2 10"):
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    r = _check_consistent(root, 2)
    assert r.num_episodes == 2
    _resume_and_append(root, spec)


def test_sigkill_while_saving(tmp_path, spec):
    """Killed at arbitrary moments while episodes are being finalised back to back."""
    root = tmp_path / "ds"
    for delay in (0.15, 0.4):
        proc = _start(root, saved=0)
        try:
            for line in proc.stdout:
                if line.startswith("RECORDING 3 "):
                    break
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        _check_consistent(root, 0)   # how many got committed depends on the moment; all must be whole
        _resume_and_append(root, spec)
    r = DatasetReader(root)
    np.testing.assert_array_equal(np.diff([e.dataset_from_index for e in r.episodes]),
                                  [e.length for e in r.episodes[:-1]])


def test_script_that_just_ends_keeps_saved_episodes(tmp_path):
    """save_episode() is non-blocking; a process that exits right after still writes the episode."""
    code = RECORDER.split("e = 0")[0] + "w.start_episode('x')\n" + \
        "for t in range(15):\n    w.add_frame({c: gen.frame(t, i) for i, c in enumerate(spec.cameras)}, " \
        "synthetic_state(t), synthetic_state(t))\nw.save_episode()\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "ds"), "0"], check=True, env=env, cwd=REPO, timeout=120)
    _check_consistent(tmp_path / "ds", 1)
