"""Scripted demonstrations in the real MuJoCo sim: recorded, successful only, resumable."""
import numpy as np

from hardware.sim.env import ALOHA_SPEC, CAMERA_NAMES
from policy.episodes import DatasetReader
from policy.episodes.generate import TRAIN_SEED_LIMIT, main


def test_generate_and_resume(tmp_path, capsys):
    out = tmp_path / "demos"
    args = ["--out", str(out), "--tasks", "put_red_on_plate", "--width", "64", "--height", "48", "--no-progress"]
    assert main(args + ["--episodes-per-task", "1"]) == 0
    r = DatasetReader(out)
    assert r.num_episodes == 1 and r.fps == int(ALOHA_SPEC.control_hz)
    assert r.camera_names == list(CAMERA_NAMES) and r.spec.action_names == ALOHA_SPEC.joint_names
    ep = r.episodes[0]
    assert ep.metadata == {"task": "put_red_on_plate", "seed": 0, "source": "scripted_expert", "scenes": "varied"}
    table = r.episode_table(0)
    # state is recorded before each step and the action sent at it: the state follows the actions
    assert np.abs(table.state[1:] - table.action[:-1]).mean() < np.abs(table.state[1:] - table.state[:-1]).mean() + 0.05
    head = r.frames(0, "head")
    assert head.shape == (ep.length, 48, 64, 3) and head.std() > 5          # a real rendered scene
    assert not np.array_equal(head[0], head[-1])                             # the arm moved
    capsys.readouterr()
    assert main(args + ["--episodes-per-task", "2"]) == 0                  # resume: records only seed 1
    printed = capsys.readouterr().out
    assert "1 already there, 1 recorded" in printed
    assert [e.metadata["seed"] for e in DatasetReader(out).episodes] == [0, 1]


def test_seed_ranges_do_not_overlap():
    from policy.evaluation.evaluate import EVAL_SEED_BASE
    assert TRAIN_SEED_LIMIT == EVAL_SEED_BASE


def test_all_means_the_training_tasks_and_scenes_are_checked(tmp_path, capsys):
    import pytest

    from hardware.sim.tasks import EVALUATION_ONLY_TASKS
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x"), "--episodes-per-task", "1", "--scenes", "tidy"])
    assert "unknown --scenes 'tidy'" in capsys.readouterr().err
    out = tmp_path / "classic"
    assert main(["--out", str(out), "--tasks", "stack_green_on_purple", "--scenes", "classic", "--episodes-per-task",
                 "1", "--width", "64", "--height", "48", "--no-progress"]) == 0
    assert DatasetReader(out).episodes[0].metadata["scenes"] == "classic"
    from policy.episodes.generate import GenerateConfig, task_list
    assert GenerateConfig(out=out, tasks=[], episodes_per_task=1).scenes == "varied"
    assert EVALUATION_ONLY_TASKS and not set(EVALUATION_ONLY_TASKS) & set(task_list("all"))
    assert "put_green_in_cup" in task_list("all") and task_list("a, b") == ["a", "b"]


def test_action_noise_drifts_the_executed_arm_joints_only():
    from policy.episodes.generate import ActionNoise
    noise = ActionNoise(0.03, seed=7)
    offsets = np.stack([noise(np.zeros(14, np.float32)) for _ in range(4000)])
    assert np.all(offsets[:, [6, 13]] == 0)                                  # grippers never perturbed
    assert 0.02 < offsets[:, :6].std() < 0.04 and 0.02 < offsets[:, 7:13].std() < 0.04
    lag1 = np.corrcoef(offsets[:-1, 0], offsets[1:, 0])[0, 1]
    assert lag1 > 0.8                                                        # a drift, not jitter
    again = ActionNoise(0.03, seed=7)
    assert np.array_equal(again(np.zeros(14, np.float32)), offsets[0])       # seeded


def test_noisy_demonstrations_record_the_experts_clean_action(tmp_path, capsys):
    """--action-noise: the arm executes expert + drift, the dataset keeps the expert's action, so the
    states leave the clean path while the labels stay the expert's (before anything is touched)."""
    args = ["--tasks", "put_red_on_plate", "--width", "64", "--height", "48", "--no-progress",
            "--episodes-per-task", "1"]
    assert main(["--out", str(tmp_path / "clean")] + args) == 0
    assert main(["--out", str(tmp_path / "noisy"), "--action-noise", "0.03"] + args) == 0
    clean, noisy = DatasetReader(tmp_path / "clean"), DatasetReader(tmp_path / "noisy")
    assert noisy.episodes[0].metadata["action_noise"] == 0.03
    assert noisy.episodes[0].metadata["seed"] == clean.episodes[0].metadata["seed"] == 0
    c, n = clean.episode_table(0), noisy.episode_table(0)
    # the first phase moves to above the block: the plan (labels) is the same, the path is not
    assert np.allclose(c.action[:10], n.action[:10], atol=1e-5)
    drift = np.abs(n.state[2:10, :6] - c.state[2:10, :6]).mean()
    assert drift > 0.005, drift
    assert np.abs(n.state[2:10, 6] - c.state[2:10, 6]).max() < 1e-3          # grippers untouched


def test_moved_block_demonstrations_show_the_expert_trying_again(tmp_path, capsys):
    """--move-prob 1: the block is moved under the descending gripper, the grasp closes on
    nothing and the expert goes back for it; the episode still succeeds (only successes are
    kept), is longer than the clean one by the retry, and says so in its metadata. The recorded
    plan up to the move is the clean one's; --move-prob outside [0, 1] is refused."""
    import pytest
    args = ["--tasks", "put_red_on_plate", "--width", "64", "--height", "48", "--no-progress",
            "--episodes-per-task", "1"]
    assert main(["--out", str(tmp_path / "moved"), "--move-prob", "1"] + args) == 0
    moved = DatasetReader(tmp_path / "moved")
    seed = moved.episodes[0].metadata["seed"]          # the first seed whose retry succeeded
    assert main(["--out", str(tmp_path / "clean"), "--seed-offset", str(seed)] + args) == 0
    clean = DatasetReader(tmp_path / "clean")
    assert clean.episodes[0].metadata["seed"] == seed
    assert moved.episodes[0].metadata["move_block"] is True and "move_block" not in clean.episodes[0].metadata
    c, m = clean.episode_table(0), moved.episode_table(0)
    assert np.allclose(c.action[:18], m.action[:18], atol=1e-5)
    assert moved.episodes[0].length >= clean.episodes[0].length + 20, (moved.episodes[0].length, clean.episodes[0].length)
    # the right gripper closes twice (two grasps) in the moved episode, once in the clean one
    def closings(grip):
        shut = grip < 0.5
        return int(np.sum(shut[1:] & ~shut[:-1]))
    assert closings(c.action[:, 13]) == 1 and closings(m.action[:, 13]) == 2
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "bad"), "--move-prob", "1.5"] + args)


def test_moved_destination_demonstrations_show_the_expert_re_aligning(tmp_path, capsys):
    """--move-dest-prob 1: the plate is moved while the block is carried above it; the expert gets
    above it again before lowering (one grasp, a longer episode that still succeeds), and the
    metadata says so. The recorded plan up to the carry is the clean one's; a share outside
    [0, 1] is refused."""
    import pytest
    args = ["--tasks", "put_red_on_plate", "--width", "64", "--height", "48", "--no-progress",
            "--episodes-per-task", "1"]
    assert main(["--out", str(tmp_path / "moved"), "--move-dest-prob", "1"] + args) == 0
    moved = DatasetReader(tmp_path / "moved")
    seed = moved.episodes[0].metadata["seed"]
    assert main(["--out", str(tmp_path / "clean"), "--seed-offset", str(seed)] + args) == 0
    clean = DatasetReader(tmp_path / "clean")
    assert moved.episodes[0].metadata["move_destination"] is True
    assert "move_destination" not in clean.episodes[0].metadata and "move_block" not in moved.episodes[0].metadata
    c, m = clean.episode_table(0), moved.episode_table(0)
    assert np.allclose(c.action[:36], m.action[:36], atol=1e-5)     # hover, down, grip, lift: untouched
    assert moved.episodes[0].length >= clean.episodes[0].length + 6, (moved.episodes[0].length, clean.episodes[0].length)

    def closings(grip):
        shut = grip < 0.5
        return int(np.sum(shut[1:] & ~shut[:-1]))
    assert closings(c.action[:, 13]) == closings(m.action[:, 13]) == 1     # re-aligned, not re-grasped
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "bad"), "--move-dest-prob", "-0.1"] + args)
