"""python -m policy.episodes.edit: delete (crash-safe, killed mid-edit), merge, summary."""
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policy.episodes import DatasetReader, DatasetWriter
from policy.episodes.edit import EditError, delete, main, merge, parse_indices, summarise

from .conftest import record_episode

ROOT = Path(__file__).resolve().parents[3]


def make(root, spec, n=4):
    with DatasetWriter(root, spec) as w:
        for e in range(n):
            record_episode(w, 5 + e, task=["lift the cube", "open the drawer"][e % 2], episode_seed=e)
            w.update_episode(e, label=["success", "failure", "success", "unlabelled"][e % 4], operator="ana")
        w.wait()
    return root


def check_consistent(root):
    r = DatasetReader(root)
    start = 0
    for e in r.episodes:
        t = r.episode_table(e.index)
        assert e.dataset_from_index == start and len(t.state) == e.length
        assert r.tasks[int(t.task_index[0])] == e.task
        assert r.frames(e.index, "head").shape[0] == e.length
        start += e.length
    assert int(r.stats["action"]["count"][0]) == r.num_frames == start
    assert r.info["total_episodes"] == r.num_episodes
    return r


def test_parse_indices():
    assert parse_indices("3, 7-9,3") == [3, 7, 8, 9] and parse_indices("") == []


def test_delete_by_index_and_by_label_rewrites_indices_and_stats(tmp_path, spec):
    root = make(tmp_path / "ds", spec)
    first = DatasetReader(root).episode_table(2).state
    out = delete(root, [1])
    assert out["deleted"] == [1] and out["episodes"] == 3
    r = check_consistent(root)
    assert [e.length for e in r.episodes] == [5, 7, 8] and [e.label for e in r.episodes] == \
        ["success", "success", "unlabelled"]
    np.testing.assert_array_equal(r.episode_table(1).state, first)
    assert r.episodes[1].operator == "ana"
    delete(root, label="success")
    r = check_consistent(root)
    assert [e.length for e in r.episodes] == [8] and r.tasks[0] == "open the drawer"
    assert not list(root.parent.glob(".ds.edit-*"))
    with DatasetWriter(root) as w:            # a recorder appends to the edited dataset
        record_episode(w, 3)
        w.wait()
    check_consistent(root)


def test_delete_refuses_a_dataset_being_recorded_and_bad_indices(tmp_path, spec):
    root = make(tmp_path / "ds", spec, 2)
    with pytest.raises(EditError, match="do not exist"):
        delete(root, [5])
    with DatasetWriter(root):
        with pytest.raises(EditError, match="open for recording"):
            delete(root, [0])
    assert DatasetReader(root).num_episodes == 2


def test_merge_concatenates_datasets_and_refuses_other_specs(tmp_path, spec):
    a, b = make(tmp_path / "a", spec, 2), make(tmp_path / "b", spec, 3)
    merge(tmp_path / "m", [a, b])
    r = check_consistent(tmp_path / "m")
    assert [e.length for e in r.episodes] == [5, 6, 5, 6, 7] and r.tasks == ["lift the cube", "open the drawer"]
    from policy.episodes.synthetic import synthetic_spec
    c = make(tmp_path / "c", synthetic_spec(48, 64, fps=15), 1)
    with pytest.raises(Exception, match="fps"):
        merge(tmp_path / "m2", [a, c])
    with pytest.raises(EditError, match="not empty"):
        merge(tmp_path / "m", [a])


def test_summary_counts_tasks_labels_durations_and_flags(tmp_path, spec, capsys):
    root = make(tmp_path / "ds", spec)
    with DatasetWriter(root) as w:
        w.update_episode(3, quality_flags=["head: frozen for 2.1 s"])
        w.wait()
    s = summarise(root)
    assert s["episodes"] == 4 and s["labels"] == {"success": 2, "failure": 1, "unlabelled": 1}
    assert s["tasks"]["lift the cube"]["success"] == 2 and s["tasks"]["open the drawer"]["episodes"] == 2
    assert s["flagged_episodes"] == [3] and s["quality_flags"] == {"head: frozen for N s": 1}
    assert s["duration_s"]["total"] == pytest.approx((5 + 6 + 7 + 8) / 30, abs=0.1)
    assert main(["summary", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 4
    assert main(["summary", str(root)]) == 0
    assert "lift the cube" in capsys.readouterr().out


def _killed_edit(root, point):
    env = {**os.environ, "WAM_EDIT_PAUSE": point}
    proc = subprocess.Popen([sys.executable, "-m", "policy.episodes.edit", "delete", str(root), "--episodes", "0,2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("PAUSED"), (line, proc.stderr.read() if proc.poll() is not None else "")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("point", ["copied:random", "before_swap", "after_swap"])
def test_a_delete_killed_mid_edit_loses_nothing(tmp_path, spec, point):
    root = make(tmp_path / "ds", spec, 5)
    before = [e.length for e in DatasetReader(root).episodes]
    if point == "copied:random":
        point = f"copied:{random.randint(1, 3)}"
    _killed_edit(root, point)
    r = check_consistent(root)
    expected = before if point != "after_swap" else [before[1], before[3], before[4]]
    assert [e.length for e in r.episodes] == expected
    with DatasetWriter(root) as w:            # the recorder still opens it
        assert w.num_episodes == len(expected)
    out = delete(root, [0, 2] if point != "after_swap" else [])   # the next edit cleans up
    assert not list(root.parent.glob(".ds.edit-*"))
    check_consistent(root)
    assert out["episodes"] == 3


def lerobot_venv() -> Path:
    """LeRobot's venv (scripts/check_lerobot.sh --venv); skip, or in CI fail, when it is not built."""
    where = subprocess.run(["bash", str(ROOT / "scripts" / "check_lerobot.sh"), "--venv"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.strip()
    venv = Path(where)
    built = (venv / "bin" / "python").exists() if os.environ.get("LEROBOT_VENV") else (venv / ".complete").exists()
    if not built:
        why = (f"LeRobot's venv is not built at {venv}: `bash scripts/check_lerobot.sh --setup` builds it "
               "(scripts/setup.sh does; ~2 min and ~6 GB the first time on a machine, cached after)")
        if os.environ.get("CI"):
            pytest.fail(why + "; in CI scripts/setup.sh should have built it: see its [check_lerobot] lines")
        pytest.skip(why)
    return venv


def test_lerobot_loads_edited_merged_and_killed_mid_delete_datasets(tmp_path, spec):
    """LeRobot 0.4.4's own LeRobotDataset (its venv, its loader, its video decoding) reads what the
    dataset tools leave: deletes by index and by label, a merge, and deletes SIGKILLed midway. What
    it reads must be what our reader reads, episode by episode."""
    lerobot_venv()
    by_index = make(tmp_path / "by_index" / "ds", spec)
    delete(by_index, [1])
    by_label = make(tmp_path / "by_label" / "ds", spec)
    delete(by_label, label="success")
    merged = tmp_path / "merged"
    merge(merged, [make(tmp_path / "other" / "ds", spec, 2), by_index])
    killed = []
    for point in (f"copied:{random.randint(1, 3)}", "before_swap", "after_swap"):
        root = make(tmp_path / f"killed_{point.replace(':', '_')}" / "ds", spec, 5)
        _killed_edit(root, point)
        assert list(root.parent.glob(".ds.edit-*")), "the kill should have left the edit's side directory"
        killed.append(root)
    roots = [by_index, by_label, merged, *killed]
    expected_lengths = {by_index: [5, 7, 8], by_label: [6, 8], merged: [5, 6, 5, 7, 8],
                        killed[0]: [5, 6, 7, 8, 9], killed[1]: [5, 6, 7, 8, 9], killed[2]: [6, 8, 9]}

    out = subprocess.run(["bash", str(ROOT / "scripts" / "check_lerobot.sh"), *map(str, roots)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["lerobot"] == "0.4.4" and seen["passed"]
    for root in roots:
        lerobot = seen["datasets"][str(root.resolve())]
        ours = check_consistent(root)
        assert [e["length"] for e in lerobot["episodes"]] == [e.length for e in ours.episodes] == \
            expected_lengths[root], root
        assert lerobot["num_frames"] == ours.num_frames and lerobot["tasks"] == ours.tasks
        for e, theirs in zip(ours.episodes, lerobot["episodes"]):
            table = ours.episode_table(e.index)
            assert theirs["tasks"] == [e.task] and theirs["task"] == e.task and theirs["label"] == e.label
            assert theirs["success_frames"] == int(table.success.sum())
            np.testing.assert_allclose(theirs["first_state"], table.state[0], atol=1e-4)
            for cam in spec.cameras:       # the right frames of the right video (edits re-index videos)
                frames = ours.frames(e.index, cam)
                for which, frame in (("first_frame_mean", frames[0]), ("last_frame_mean", frames[-1])):
                    assert theirs[which][f"observation.images.{cam}"] == pytest.approx(frame.mean(), abs=1.5), \
                        (root, e.index, cam, which)
    labels = [e["label"] for e in seen["datasets"][str(by_label.resolve())]["episodes"]]
    assert labels == ["failure", "unlabelled"]
