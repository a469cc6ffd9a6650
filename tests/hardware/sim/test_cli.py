"""The sim's command lines, run as real processes: episode video and expert check."""
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio

REPO = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL="osmesa")
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_expert_episode_video(tmp_path):
    video = tmp_path / "episode.mp4"
    proc = run("hardware.sim", "--task", "put_blue_on_plate", "--seed", "4", "--expert",
               "--video", str(video), "--width", "160", "--height", "120")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["success"] is True and report["instruction"] == "put the blue block on the plate"
    reader = imageio.get_reader(str(video))
    frames = [frame for frame in reader]
    reader.close()
    assert len(frames) == report["steps"] + 1
    assert frames[0].shape == (120, 3 * 160, 3)
    assert abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0, "the scene changed"


def test_video_path_must_be_mp4(tmp_path):
    proc = run("hardware.sim", "--video", str(tmp_path / "out.avi"))
    assert proc.returncode != 0 and "--video must end in .mp4" in proc.stderr


def test_check_experts_prints_json_last():
    proc = run("hardware.sim.check_experts", "--seeds", "2", "--tasks", "stack_green_on_purple",
               "--width", "160", "--height", "120")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["success"] == {"stack_green_on_purple": 1.0}
    assert report["render_hz"] > 0 and report["physics_hz"] > 1000


def test_check_experts_rejects_unknown_task():
    proc = run("hardware.sim.check_experts", "--tasks", "juggle")
    assert proc.returncode != 0 and "unknown task(s) juggle" in proc.stderr
