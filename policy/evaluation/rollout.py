"""One closed-loop episode: sim -> observation -> PolicyClient -> action chunk -> sim.

Receding horizon: the policy is asked for a chunk, the first `execute` actions are run (one per
10 Hz tick), then it is asked again from the new observation. Each action passes the safety
layer's checks (joint limits, per-tick change cap against the last target), as on the console.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hardware.arm import Arm, ArmState
from hardware.safety import SafeArm, SafetyConfig
from hardware.sim.env import ALOHA_SPEC, SimEnv
from hardware.sim.tasks import TASKS, held_by, object_pos
from policy.wire.types import Observation


@dataclass
class RolloutConfig:
    execute: int = 16                # actions of each chunk run before the next request (paper, sim: all)
    rate_limit: bool = True          # cap the per-tick change like hardware.safety.SafeArm
    max_steps: int | None = None     # None: the task's own limit


@dataclass
class EpisodeOutcome:
    task: str
    seed: int
    instruction: str
    success: bool
    steps: int                       # control ticks run (until success or max_steps)
    chunks: int
    chunk_ms: list[float] = field(default_factory=list)    # client-side round trip per chunk
    server_ms: list[float] = field(default_factory=list)   # server-side inference per chunk
    lifted_m: float | None = None    # highest rise of the object the task moves (ObjectLift); None: not tracked
    held_at_end: bool | None = None          # a gripper held the moved object when the episode ended
    from_destination_m: float | None = None  # the moved object's centre to its destination's, on the table, at the end


LIFTED_M = 0.05     # an object that rose this far was grasped (a block resting on the table: 0)
NEAR_M = 0.05       # let go this close (centre to centre, on the table) to its destination: it got there


class ObjectLift:
    """The highest the task's moved object (Task.moved: the block, the bar) rose above where it lay
    when the episode began, and where it ended. Why: it tells a missed grasp (never lifted) from a
    grasp that went wrong later (lifted, not placed), and then a block never let go from one let go
    beside its destination or far from it, which a success rate cannot. Make it after env.reset;
    call it after every world step; record() its findings into the outcome at the end."""

    def __init__(self, env: SimEnv):
        self.env, self.obj, self.rise = env, env.task.moved, 0.0
        self.destination = env.task.destination
        self.start = self._z()

    def _z(self) -> float:
        return float(object_pos(self.env.model, self.env.data, self.obj)[2])

    def __call__(self) -> None:
        self.rise = max(self.rise, self._z() - self.start)

    def record(self, out: "EpisodeOutcome") -> "EpisodeOutcome":
        m, d = self.env.model, self.env.data
        out.lifted_m = round(self.rise, 4)
        out.held_at_end = any(held_by(m, d, self.obj, side) for side in ("left", "right"))
        if self.destination is not None:
            gap = object_pos(m, d, self.obj)[:2] - object_pos(m, d, self.destination)[:2]
            out.from_destination_m = round(float(np.linalg.norm(gap)), 4)
        return out


def instruction_for(task: str, seed: int, phrasings: list[str] | None = None, episode: int | None = None) -> str:
    """The instruction an evaluation episode uses. Without `phrasings`: one of the task's own
    paraphrases, drawn by seed. With them (policy.evaluate --instructions FILE): episode i of
    the task uses phrasings[i % len(phrasings)], so every phrasing gets its share of episodes."""
    if phrasings is None:
        phrasings = TASKS[task].instructions
        return phrasings[np.random.default_rng(seed).integers(len(phrasings))]
    if not phrasings:
        raise ValueError(f"no phrasings given for task '{task}'")
    index = episode if episode is not None else int(np.random.default_rng(seed).integers(len(phrasings)))
    return phrasings[index % len(phrasings)]


class EnvArm(Arm):
    """The synchronous SimEnv seen as an Arm, so that evaluation commands pass the very same
    hardware.safety.SafeArm chain as the console's (not a copy of it)."""

    spec = ALOHA_SPEC

    def __init__(self, env: SimEnv):
        self.env = env
        self.target = np.asarray(env.target, np.float32)

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    @property
    def is_connected(self) -> bool:
        return True

    def read_state(self) -> ArmState:
        return ArmState(position=self.env.state(), timestamp=time.monotonic(), target=self.target)

    def command(self, target: np.ndarray) -> None:
        self.target = np.asarray(target, np.float32)   # run_episode steps the env with it


def safe_env_arm(env: SimEnv, rate_limit: bool = True) -> SafeArm:
    no_cap = None if rate_limit else (np.inf,) * ALOHA_SPEC.action_dim
    return SafeArm(EnvArm(env), SafetyConfig(max_step=no_cap, watchdog_s=np.inf))


def run_episode(env: SimEnv, client, task: str, seed: int, cfg: RolloutConfig,
                video_path: Path | None = None, instruction: str | None = None) -> EpisodeOutcome:
    """instruction: what the policy is told (default: instruction_for(task, seed))."""
    env.reset(task=task, seed=seed)
    instruction = instruction_for(task, seed) if instruction is None else instruction
    out = EpisodeOutcome(task, seed, instruction, False, 0, 0)
    lift = ObjectLift(env)
    arm = safe_env_arm(env, cfg.rate_limit)
    video = _VideoWriter(video_path, instruction) if video_path is not None else None
    max_steps = env.task.max_steps if cfg.max_steps is None else min(cfg.max_steps, env.task.max_steps)
    try:
        while out.steps < max_steps and not out.success:
            images = env.render()
            chunk = client.infer(Observation(images=images, state=env.state(), instruction=instruction))
            out.chunks += 1
            out.chunk_ms.append(float(chunk.timings_ms.get("client_total", np.nan)))
            out.server_ms.append(float(chunk.timings_ms.get("inference", np.nan)))
            future = _preview(client, chunk.chunk_id) if video is not None else None
            for j, action in enumerate(chunk.actions[:cfg.execute]):
                if video is not None:
                    video.add(images if j == 0 else env.render(), future, j)
                env.step(arm.command(action).astype(np.float32))
                lift()
                out.steps += 1
                if env.success():
                    out.success = True
                    break
                if out.steps >= max_steps:
                    break
    finally:
        if video is not None:
            video.close(out.success)
    return lift.record(out)


def _preview(client, chunk_id: int) -> np.ndarray | None:
    """The chunk's imagined future, or None when there is none (a video-free policy)."""
    from policy.wire.client import PolicyServerError
    try:
        frames = client.preview(chunk_id)
    except PolicyServerError:
        return None
    return frames if len(frames) else None


class _VideoWriter:
    """Real views (head on top, wrists below) next to the imagined future frame for this tick."""

    def __init__(self, path: Path, instruction: str, fps: int = 10):
        import imageio.v2 as imageio
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.instruction = path, instruction
        self.writer = imageio.get_writer(str(path), fps=fps, codec="libx264", quality=7,
                                         macro_block_size=8, ffmpeg_log_level="error")

    def add(self, images: dict[str, np.ndarray], future: np.ndarray | None, tick_in_chunk: int) -> None:
        import cv2
        head = images["head"]
        h, w = head.shape[:2]
        wrists = np.concatenate([cv2.resize(images["left_wrist"], (w // 2, h // 2)),
                                 cv2.resize(images["right_wrist"], (w // 2, h // 2))], axis=1)
        real = np.concatenate([head, wrists], axis=0)
        side = np.zeros_like(real)
        if future is not None and len(future):
            k = min(len(future) - 1, max(0, (tick_in_chunk - 1) // 2))   # future frame k is t + 2(k+1)
            f = future[k]
            scale = min(real.shape[0] / f.shape[0], real.shape[1] / f.shape[1])
            f = cv2.resize(np.ascontiguousarray(f), (int(f.shape[1] * scale), int(f.shape[0] * scale)),
                           interpolation=cv2.INTER_NEAREST)
            side[:f.shape[0], :f.shape[1]] = f
            cv2.putText(side, f"imagined t+{2 * (k + 1)}", (4, real.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX,
                        0.45, (255, 255, 0), 1)
        frame = np.concatenate([real, side], axis=1)
        cv2.putText(frame, self.instruction[:60], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        self.writer.append_data(frame)

    def close(self, success: bool) -> None:
        self.writer.close()
