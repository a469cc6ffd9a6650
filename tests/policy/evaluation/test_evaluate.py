"""policy.evaluate end to end with a random-weight checkpoint: real policy server child process,
real ZeroMQ client, real MuJoCo episodes, a real mp4 rollout video, JSON on the last line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policy.model.checkpoint import prefixed, save_checkpoint
from policy.model.codec import TinyCodec
from policy.model.config import SIM_TINY
from policy.model.wam import EfficientWAM

TINY = SIM_TINY.replace(video_layers=2, video_width=64, num_heads=2, head_dim=32, video_ffn=128,
                        action_width=64, action_ffn=128)


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    from hardware.sim.env import ALOHA_SPEC
    torch.manual_seed(0)
    model, codec = EfficientWAM(TINY), TinyCodec(TINY.latent_channels, TINY.spatial_factor, TINY.temporal_factor)
    home = list(map(float, ALOHA_SPEC.home))
    norm = {"state": {"mean": home, "std": [0.1] * 14}, "action": {"mean": home, "std": [0.1] * 14}}
    d = tmp_path_factory.mktemp("ckpt") / "random"
    save_checkpoint(d, {**prefixed(model.state_dict(), "wam"), **prefixed(codec.state_dict(), "codec")},
                    {"preset": "sim-tiny", "wam_config": TINY.to_dict(), "norm_stats": norm,
                     "scene_prefix": TINY.scene_prefix})
    return d


def test_evaluate_runs_variants_on_the_same_seeds(random_checkpoint, tmp_path, capsys):
    from policy.evaluation.evaluate import EVAL_SEED_BASE, main
    videos = tmp_path / "videos"
    summary = main(["--checkpoint", str(random_checkpoint), "--episodes-per-task", "1",
                    "--tasks", "put_red_on_plate", "--variants", "rt,video_free", "--execute", "8",
                    "--clock", "lockstep",
                    "--max-steps", "20", "--jobs", "2", "--object-jitter", "1.5",
                    "--videos", "1", "--videos-dir", str(videos)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == summary
    assert set(summary) == {"rt", "video_free"}
    for name, steps in (("rt", [2, 10]), ("video_free", [0, 10])):
        s = summary[name]
        assert "error" not in s, s
        assert s["steps"] == steps
        assert set(s["success"]) == {"put_red_on_plate"}
        assert 0.0 <= s["mean_success"] <= 1.0
        assert s["episodes_per_task"] == {"put_red_on_plate": 1}
        assert s["mean_steps"]["put_red_on_plate"] > 0           # the episode really ran
        assert s["chunk_ms_p50"] > 0
        assert s["object_jitter"] == 1.5                         # reached the child processes
        # a random policy never lifts the block in 20 ticks: its failure is a grasp never made
        assert s["failures"] == {"put_red_on_plate": {"never_lifted": 1, "lifted": 0}}, s["failures"]
    mp4s = sorted(videos.glob("*.mp4"))
    assert [p.name for p in mp4s] == [f"rt_put_red_on_plate_seed{EVAL_SEED_BASE}.mp4",
                                      f"video_free_put_red_on_plate_seed{EVAL_SEED_BASE}.mp4"]
    import imageio.v3 as iio
    frames = iio.imread(mp4s[0], plugin="pyav")
    assert frames.ndim == 4 and frames.shape[0] > 1 and frames.shape[2] == 640   # real | imagined


def test_child_argv_drops_per_child_flags():
    from policy.evaluation.evaluate import _without
    argv = ["--checkpoint", "c", "--variants", "rt,dense", "--jobs=2", "--json-out", "x", "--execute", "8"]
    assert _without(argv, ("--variants", "--jobs", "--json-out")) == ["--checkpoint", "c", "--execute", "8"]


def test_evaluation_seeds_never_overlap_demonstration_seeds():
    from policy.evaluation.evaluate import EVAL_SEED_BASE, eval_seeds
    seeds = eval_seeds(50)
    assert min(seeds) >= EVAL_SEED_BASE and len(set(seeds)) == 50


def test_unknown_variant_is_refused(random_checkpoint):
    from policy.evaluation.evaluate import main
    with pytest.raises(SystemExit, match="unknown variant"):
        main(["--checkpoint", str(random_checkpoint), "--variants", "fast"])


def test_object_jitter_beyond_the_safe_range_is_refused(random_checkpoint):
    from policy.evaluation.evaluate import main
    with pytest.raises(SystemExit, match="object-jitter"):
        main(["--checkpoint", str(random_checkpoint), "--object-jitter", "3"])


def test_rollout_instruction_is_a_paraphrase():
    from hardware.sim.tasks import TASKS
    from policy.evaluation.rollout import instruction_for
    drawn = {instruction_for("handover_bar", s) for s in range(40)}
    assert drawn <= set(TASKS["handover_bar"].instructions) and len(drawn) > 1


def test_evaluation_actions_pass_the_safety_layer():
    from hardware.safety import UnsafeCommandError
    from hardware.sim.env import ALOHA_SPEC, SimConfig, SimEnv
    from policy.evaluation.rollout import safe_env_arm
    env = SimEnv(SimConfig(width=64, height=48))
    try:
        env.reset(seed=0)
        arm = safe_env_arm(env)
        start = env.state().astype(np.float64)
        out = arm.command(start + 10.0)
        assert np.all(out - start <= np.asarray(ALOHA_SPEC.max_step) + 1e-6)
        assert np.all(out <= np.asarray(ALOHA_SPEC.upper) + 1e-6)
        with pytest.raises(UnsafeCommandError):
            arm.command(np.full(ALOHA_SPEC.action_dim, np.nan))
    finally:
        env.close()


def test_object_lift_tells_a_missed_grasp_from_a_later_failure():
    """ObjectLift follows the task's moved object in the real sim (blue for put_blue_on_plate, which
    the layout draws after red): the expert lifts it well past LIFTED_M and holds it, an arm holding
    still does neither and leaves it where it lay; failures() counts failed episodes by it, splits
    the lifted ones by how they ended, and leaves out successes and episodes no clock tracked
    (lifted_m None, the real clock)."""
    from hardware.sim.env import SimConfig, SimEnv
    from hardware.sim.expert import make_expert
    from hardware.sim.tasks import object_pos
    from policy.evaluation.evaluate import failures
    from policy.evaluation.rollout import LIFTED_M, NEAR_M, EpisodeOutcome, ObjectLift
    with SimEnv(SimConfig(width=64, height=48, scenes="varied")) as env:
        ends = {}
        for who in ("expert", "still"):
            env.reset(task="put_blue_on_plate", seed=5)
            assert env.task.objects[0] == "red_block" and env.task.moved == "blue_block"
            start = object_pos(env.model, env.data, "blue_block")[:2] - object_pos(env.model, env.data, "plate")[:2]
            expert, lift, hold = make_expert(env), ObjectLift(env), env.target.copy()
            for _ in range(45):                  # hover, down, close, lift (36 ticks) and a little more
                env.step(expert.act() if who == "expert" else hold)
                lift()
            ends[who] = lift.record(EpisodeOutcome("put_blue_on_plate", 5, "x", False, 45, 1))
    assert ends["expert"].lifted_m > 2 * LIFTED_M and ends["expert"].held_at_end, ends["expert"]
    assert ends["still"].lifted_m < 0.005 and not ends["still"].held_at_end, ends["still"]
    assert abs(ends["still"].from_destination_m - float(np.linalg.norm(start))) < 0.002
    outcome = lambda ok, lifted, held=None, gap=None: EpisodeOutcome(  # noqa: E731
        "t", 0, "x", ok, 10, 1, lifted_m=lifted, held_at_end=held, from_destination_m=gap)
    eps = {"t": [outcome(False, 0.001), outcome(False, 0.12), outcome(False, 0.002), outcome(True, 0.12),
                 outcome(False, None)], "u": [outcome(True, 0.1)]}
    assert failures(eps) == {"t": {"never_lifted": 2, "lifted": 1}}
    eps = {"t": [outcome(False, 0.12, True, 0.2), outcome(False, 0.12, False, NEAR_M / 2),
                 outcome(False, 0.12, False, 2 * NEAR_M), outcome(False, 0.12, False, 3 * NEAR_M),
                 outcome(False, 0.0, False, 0.3), outcome(True, 0.12, False, 0.0)]}
    assert failures(eps) == {"t": {"never_lifted": 1, "lifted": 4, "held": 1, "released_near": 1, "released_away": 2}}
