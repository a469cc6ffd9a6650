"""policy.train on a tiny real dataset (mp4 + parquet): stages run, losses are finite, the
checkpoint serves through load_runner, training resumes, and DDP (torchrun, gloo, 2 CPU
processes) leaves both ranks with identical weights."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from policy.episodes.synthetic import write_synthetic

REPO = Path(__file__).resolve().parents[3]
TINY = {"video_layers": 2, "video_width": 64, "num_heads": 2, "head_dim": 32, "video_ffn": 128,
        "action_width": 64, "action_ffn": 128}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("data") / "demos", episodes=3, frames=24, imagined=False)


def _args(data: Path, out: Path, steps: tuple[int, int, int, int] = (2, 2, 2, 2)) -> list[str]:
    c, v, a, j = steps
    return ["--data", str(data), "--out", str(out), "--model", json.dumps(TINY),
            "--codec-steps", str(c), "--video-steps", str(v), "--action-steps", str(a), "--joint-steps", str(j),
            "--batch-size", "4", "--codec-batch-size", "2", "--log-every", "1", "--save-every", "2"]


def test_train_writes_a_servable_checkpoint_and_resumes(dataset, tmp_path):
    from policy.training.train import main
    from policy.serving.wam_runner import load_runner
    from policy.wire.types import Observation

    out = tmp_path / "run"
    main(_args(dataset, out, steps=(2, 2, 2, 0)))
    state = json.loads((out / "train_state.json").read_text())
    assert state["finished"] == ["codec", "video", "action", "joint"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} == {"codec", "video", "action"}
    assert all(np.isfinite(r.get("action", 0.0)) and np.isfinite(r.get("video", 0.0)) for r in log)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["wam_config"]["video_width"] == 64
    assert len(cfg["norm_stats"]["action"]["std"]) == 14
    assert cfg["training"]["episodes"] == 3

    runner = load_runner(str(out))
    obs = Observation({c: np.zeros((48, 64, 3), np.uint8) for c in ("head", "left_wrist", "right_wrist")},
                      np.zeros(14, np.float32), "lift the cube")
    chunk = runner.infer(obs)
    assert chunk.actions.shape == (16, 14) and np.isfinite(chunk.actions).all()

    # Resume: more joint steps on the same run directory continue from the finished stages.
    before = load_file(str(out / "model.safetensors"))
    main(_args(dataset, out, steps=(2, 2, 2, 3)))
    log2 = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    new = log2[len(log):]
    assert {r["stage"] for r in new} == {"joint"}, "finished stages must not run again"
    after = load_file(str(out / "model.safetensors"))
    changed = [k for k in before if k.startswith("wam.") and not torch.equal(before[k], after[k])]
    assert changed, "joint training changed no weights"
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("codec.")), "codec must stay frozen"


def test_bad_input_names_the_problem(tmp_path):
    from policy.training.train import main
    with pytest.raises(SystemExit, match="generate demonstrations"):
        main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--model", '{"not_a_field": 1}'])


def test_ddp_two_cpu_ranks_stay_identical(dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "osmesa", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "policy.train", *_args(dataset, out, steps=(2, 2, 2, 2)), "--rank-weights"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = load_file(str(out / "rank0_weights.safetensors"))
    w1 = load_file(str(out / "rank1_weights.safetensors"))
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), f"ranks differ in {k}"
    # and training moved them: the action head starts at zero
    assert w0["action.head.weight"].abs().sum() > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["world_size"] == 2


def test_a_student_starts_as_the_sliced_teacher_and_distils_it(dataset, tmp_path):
    """The paper's stage-1 path at toy scale: train a teacher, slice it into a narrower, shallower
    video expert, train the student's stage 1 with the alignment losses."""
    from policy.training.train import Trainer, main, parse_args
    from policy.training.wan_transfer import slice_state

    teacher = tmp_path / "teacher"
    main(_args(dataset, teacher, steps=(2, 3, 0, 0)))
    student_model = {**TINY, "video_layers": 1, "video_width": 32, "num_heads": 1, "video_ffn": 64}
    args = _args(dataset, tmp_path / "student", steps=(0, 3, 1, 0))
    args[args.index("--model") + 1] = json.dumps(student_model)
    args += ["--teacher", str(teacher)]

    trainer = Trainer(parse_args(args))
    sliced = slice_state(trainer.teacher.video.state_dict(), trainer.teacher.slice_plan)
    assert trainer.teacher.slice_plan.layers == (1,) and len(trainer.teacher.slice_plan.heads) == 1
    assert all(torch.equal(v, sliced[k]) for k, v in trainer.model.video.state_dict().items())
    trainer.run()
    log = [json.loads(line) for line in (tmp_path / "student" / "train_log.jsonl").read_text().splitlines()]
    video = [r for r in log if r["stage"] == "video"]
    assert video and all(np.isfinite(r["align"]) and np.isfinite(r["motion"]) for r in video[:1])
    assert 0.0 <= video[0]["align"] <= 2.0                     # a cosine distance
    assert all("align" not in r for r in log if r["stage"] != "video")

    from policy.training.distill import heldout_video_loss, main as distill_main
    losses = distill_main(["compare", str(teacher), str(tmp_path / "student"), "--data", str(dataset),
                           "--batches", "2"])
    assert set(losses) == {str(teacher), str(tmp_path / "student")} and all(np.isfinite(list(losses.values())))
    assert heldout_video_loss(str(teacher), str(dataset), batches=2) == losses[str(teacher)]   # fixed noise

    with pytest.raises(SystemExit, match="--codec-steps 0"):
        Trainer(parse_args(_args(dataset, tmp_path / "s2", steps=(2, 1, 0, 0)) + ["--teacher", str(teacher)]))


def test_ddp_distillation_keeps_ranks_identical(dataset, tmp_path):
    """--teacher under torchrun: the distiller (outside DDP) is synced from rank 0 and its
    gradients averaged, so both ranks end with the same student and the same projections."""
    from policy.training.train import main

    teacher = tmp_path / "teacher"
    main(_args(dataset, teacher, steps=(2, 2, 0, 0)))
    student = {**TINY, "video_layers": 1, "video_width": 32, "num_heads": 1, "video_ffn": 64}
    args = _args(dataset, tmp_path / "ddp", steps=(0, 3, 0, 0))
    args[args.index("--model") + 1] = json.dumps(student)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "osmesa", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "policy.train", *args, "--teacher", str(teacher), "--rank-weights"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = load_file(str(tmp_path / "ddp" / "rank0_weights.safetensors"))
    w1 = load_file(str(tmp_path / "ddp" / "rank1_weights.safetensors"))
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "ranks differ after distillation"
    log = [json.loads(line) for line in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    assert any("align" in r for r in log)


def test_fsdp_two_cpu_ranks_train_and_write_a_servable_checkpoint(dataset, tmp_path):
    """--fsdp (FSDP2 fully_shard, gloo): the flow stages run sharded, the checkpoint holds whole
    tensors (gathered from the shards) and serves; both ranks see the same full weights."""
    from policy.serving.wam_runner import load_runner
    out = tmp_path / "fsdp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "osmesa", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "policy.train", *_args(dataset, out, steps=(2, 2, 2, 2)), "--rank-weights", "--fsdp"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = load_file(str(out / "rank0_weights.safetensors"))
    w1 = load_file(str(out / "rank1_weights.safetensors"))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert w0["action.head.weight"].abs().sum() > 0             # trained (zero-initialised head)
    ckpt = load_file(str(out / "model.safetensors"))
    assert torch.equal(ckpt["wam.action.head.weight"], w0["action.head.weight"])
    assert load_runner(str(out)).model.cfg.video_width == 64


def test_init_fine_tunes_the_whole_model_from_a_checkpoint(dataset, tmp_path):
    from policy.training.train import main

    base = tmp_path / "base"
    main(_args(dataset, base, steps=(2, 2, 0, 0)))
    before = load_file(str(base / "model.safetensors"))
    # --init keeps the checkpoint's sizes (its weights must fit): --model may not change them
    args = _args(dataset, tmp_path / "wider", steps=(0, 0, 0, 0))
    args[args.index("--model") + 1] = json.dumps({"video_width": 128})
    with pytest.raises(SystemExit, match="may only add"):
        main(args + ["--init", str(base)])
    args = _args(dataset, tmp_path / "same", steps=(0, 0, 0, 0))
    args[args.index("--model") + 1] = "{}"
    main(args + ["--init", str(base)])
    cfg = json.loads((tmp_path / "same" / "config.json").read_text())
    assert cfg["wam_config"]["video_width"] == 64
    same = load_file(str(tmp_path / "same" / "model.safetensors"))
    assert same.keys() == before.keys() and all(torch.equal(before[k], same[k]) for k in before), \
        "with no steps the fine-tuned checkpoint is the one it started from"
    assert cfg["training"]["phrasings"], "the texts trained on are listed (familiarity reads them)"

    main(_args(dataset, tmp_path / "tuned", steps=(0, 0, 0, 2)) + ["--init", str(base)])
    after = load_file(str(tmp_path / "tuned" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("codec.")), "codec kept"
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("wam.")), \
        "fine-tuning changed no weights"
    # ... but it may add absolute condition positions, which keep their own start and then train
    args = _args(dataset, tmp_path / "positions", steps=(0, 0, 0, 2))
    args[args.index("--model") + 1] = json.dumps({"condition_positions": True})
    main(args + ["--init", str(base), "--joint-video-ratio", "1"])
    cfg = json.loads((tmp_path / "positions" / "config.json").read_text())
    assert cfg["wam_config"]["condition_positions"] and cfg["wam_config"]["video_width"] == 64
    joint = cfg["training"]["stages"]["joint"]
    assert joint["lr_video"] == joint["lr_action"] == 1e-3, "--joint-video-ratio 1: both experts alike"
    positions = load_file(str(tmp_path / "positions" / "model.safetensors"))["wam.video.condition_positions"]
    assert positions.abs().sum() > 0
    with pytest.raises(SystemExit, match="--init takes the whole model"):
        main(_args(dataset, tmp_path / "bad") + ["--init", str(base), "--init-codec", str(base)])
