"""Record scripted demonstrations in the embedded simulation into a LeRobot v3 dataset.

    python -m policy.episodes.generate --out data/sim-demos --tasks all --episodes-per-task 50

Each tick records the three camera images and the joint state BEFORE the step and the action
sent. Only successful episodes are kept (the failures are counted and reported). Resumable:
run it again with the same arguments and it records only what is missing; episodes carry
{"task", "seed", "source"} metadata, and (task, seed) pairs already in the dataset are skipped.

Seeds: demonstrations use seeds seed_offset, seed_offset+1, ... per task, always below
TRAIN_SEED_LIMIT = 1_000_000; held-out evaluation (policy.evaluate) uses seeds from
EVAL_SEED_BASE = 1_000_000 upward, so training and evaluation layouts never overlap.
The instruction of an episode is one of the task's phrasings, drawn by its seed (training swaps
it for phrasings of the instruction grammar, hardware/sim/instructions.py, at every step).
Scenes: --scenes varied (the default: objects anywhere in table regions, random yaw, distractors),
crowded (varied, plus a block no instruction names in the task's own region, beside the one to
pick: hardware/sim/scenes.py SceneSpec.crowd) or classic (a few cm around fixed slots); the
episode's metadata records which.
Recoveries (--action-noise STD, radians): the arm joints EXECUTE the expert's action plus a slowly
drifting offset (a first-order autoregressive process per joint, stationary std STD, drawn from the
seed), while the dataset RECORDS the expert's clean action beside the state the noise led to. A
policy then sees states off the expert's path labelled with the way back (DART, Laskey et al.
2017; ACT's scripted sim data injects noise the same way). Grippers are never perturbed.
Retries (--move-prob P): in that share of episodes the block is moved 3-5 cm while the gripper
descends onto it (ObjectMover.block); the grasp closes on nothing, the expert finds its lift empty and
goes back for the block where it lies (hardware/sim/expert.py, Phase.then), so the dataset shows
what to do after a missed grasp, which no clean demonstration does. Metadata: "move_block".
Re-aligned places (--move-dest-prob P): in that share of episodes the destination (plate, cup, bottom
block) is moved 3-5 cm while the block is carried above it; the carry ends beside it and the expert
gets above it again before lowering, so the dataset shows what to do when the held block is not
over its destination (the policy's commonest failure: a block set down beside the cup).
Metadata: "move_destination". Both movers are ObjectMover.
"--tasks all" means the training tasks (hardware.sim.tasks.TRAINING_TASKS): evaluation-only
tasks are never demonstrated.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402

from hardware.aloha import ACTION_DIM, GRIPPER_INDICES  # noqa: E402
from policy.episodes.reader import DatasetReader  # noqa: E402
from policy.episodes.spec import DatasetSpec  # noqa: E402
from policy.episodes.writer import DatasetWriter  # noqa: E402

TRAIN_SEED_LIMIT = 1_000_000      # == hardware.sim.tasks.EVAL_SEED_BASE: evaluation seeds start here


def instruction_for(instructions: tuple[str, ...], seed: int) -> str:
    """One of a task's phrasings, drawn by seed (the same rule evaluation uses)."""
    return instructions[int(np.random.default_rng(seed).integers(len(instructions)))]


@dataclass
class GenerateConfig:
    out: Path
    tasks: list[str]
    episodes_per_task: int
    seed_offset: int = 0
    width: int = 320
    height: int = 240
    max_tries_factor: float = 3.0     # give up on a task after this many seeds per wanted episode (+10)
    scenes: str = "varied"            # hardware.sim.tasks.SCENES
    action_noise: float = 0.0         # std (rad) of the drifting offset added to executed arm joints
    move_prob: float = 0.0            # share of episodes whose block is moved under the descending gripper
    move_dest_prob: float = 0.0       # share of episodes whose destination is moved under the carried block


@dataclass
class TaskReport:
    wanted: int
    had: int = 0                      # already in the dataset when we started
    recorded: int = 0
    failed: int = 0
    failed_seeds: list[int] = field(default_factory=list)


def dataset_spec(env_module, width: int, height: int) -> DatasetSpec:
    robot = env_module.ALOHA_SPEC
    cameras = {cam: (height, width) for cam in env_module.CAMERA_NAMES}
    return DatasetSpec.from_robot(robot, cameras, fps=int(round(robot.control_hz)))


class ActionNoise:
    """A drifting offset for the arm joints of a 14-d action: x <- a x + sqrt(1 - a^2) std N(0, 1)
    per joint (stationary std `std`; `a` = 0.9 at 10 Hz keeps a push for about a second, long
    enough to leave the expert's path, short enough to come back), zero on the grippers."""

    def __init__(self, std: float, seed: int, action_dim: int = ACTION_DIM,
                 grippers: tuple[int, ...] = GRIPPER_INDICES, decay: float = 0.9):
        self.std, self.decay = std, decay
        self.rng = np.random.default_rng([seed, 0x5EED])      # its own stream: layouts keep theirs
        self.mask = np.ones(action_dim, np.float32)
        self.mask[list(grippers)] = 0.0
        self.offset = self.std * self.rng.standard_normal(action_dim).astype(np.float32) * self.mask

    def __call__(self, action: np.ndarray) -> np.ndarray:
        """The action to execute; advances the drift by one tick."""
        out = (action + self.offset).astype(np.float32)
        step = self.rng.standard_normal(action.shape[-1]).astype(np.float32)
        self.offset = self.decay * self.offset + np.sqrt(1 - self.decay ** 2) * self.std * step * self.mask
        return out


class ObjectMover:
    """Moves one object 3-5 cm in a free direction at a set tick of the phase that watches it,
    once per episode, in a seeded share of episodes. The expert has already taken the object's
    position for that phase, so it ends the phase in the wrong place and must notice and go
    again: a demonstration of recovering in which every recorded action is still the expert's
    own (nothing it did was wrong; the world changed).
      ObjectMover.block (--move-prob): the block the open gripper is lowered onto, three ticks
        into the descent; the grasp closes on nothing, the lift comes up empty, the expert goes
        back for the block where it now lies.
      ObjectMover.destination (--move-dest-prob): the plate, cup or block the held block is carried
        above, four ticks into the carry; the carry ends beside it, the expert re-aligns above it
        before lowering (hardware/sim/expert.py, ALIGN_TOLERANCE)."""

    def __init__(self, prob: float, seed: int, watch: str, tick: int, salt: int, metadata_key: str):
        self.rng = np.random.default_rng([seed, salt])       # its own stream: layouts keep theirs
        self.planned = bool(self.rng.random() < prob)
        self.watch, self.tick, self.metadata_key = watch, tick, metadata_key
        self.moved = False

    def __call__(self, env, expert) -> None:
        obj = getattr(expert, self.watch)
        if not self.planned or self.moved or obj is None or expert.tick_in_phase != self.tick:
            return
        from hardware.sim.scenes import FOOTPRINT      # the sim loads only where episodes are made
        from hardware.sim.tasks import object_pos
        here = object_pos(env.model, env.data, obj)[:2]
        others = [(object_pos(env.model, env.data, o)[:2], FOOTPRINT[o]) for o in env.task.objects
                  if o != obj and object_pos(env.model, env.data, o)[2] < 0.05]     # on the table, not held
        for _ in range(8):              # a direction that does not land on another object
            angle, dist = self.rng.uniform(0, 2 * np.pi), self.rng.uniform(0.03, 0.05)
            shift = dist * np.array([np.cos(angle), np.sin(angle)])
            if all(np.linalg.norm(here + shift - o) > max(0.06, r + FOOTPRINT[obj] + 0.01)
                   for o, r in others):
                env.push_object(obj, float(shift[0]), float(shift[1]))
                self.moved = True
                return

    @classmethod
    def block(cls, prob: float, seed: int) -> ObjectMover:
        return cls(prob, seed, watch="descending_on", tick=3, salt=0xB10C, metadata_key="move_block")

    @classmethod
    def destination(cls, prob: float, seed: int) -> ObjectMover:
        return cls(prob, seed, watch="carrying_to", tick=4, salt=0xDE57, metadata_key="move_destination")


def record_one(env, make_expert, writer: DatasetWriter, task: str, seed: int, fps: int,
               action_noise: float = 0.0, move_prob: float = 0.0, move_dest_prob: float = 0.0) -> bool:
    """Run the expert on (task, seed), recording every tick; keep the episode only on success.
    With action_noise > 0 the executed action drifts off the expert's (ActionNoise); with
    move_prob > 0 that share of episodes has its block moved under the descending gripper, with
    move_dest_prob > 0 its destination moved under the carried block (ObjectMover). The recorded
    action is always the expert's own."""
    env.reset(task=task, seed=seed)
    expert = make_expert(env)
    noise = ActionNoise(action_noise, seed) if action_noise > 0 else None
    movers = (ObjectMover.block(move_prob, seed), ObjectMover.destination(move_dest_prob, seed))
    metadata = {"task": task, "seed": seed, "source": "scripted_expert", "scenes": env.config.scenes}
    if noise is not None:
        metadata["action_noise"] = action_noise
    for mover in movers:
        if mover.planned:
            metadata[mover.metadata_key] = True     # armed: moved once the gripper descends / carries
    writer.start_episode(instruction_for(env.task.instructions, seed), metadata=metadata)
    success_step = None
    for step in range(env.task.max_steps):
        images, state = env.render(), env.state()
        action = expert.act()
        for mover in movers:
            mover(env, expert)
        writer.add_frame(images, state, action, timestamp=step / fps)
        env.step(action if noise is None else noise(action))
        if success_step is None and env.success():
            success_step = step
        if success_step is not None and expert.done:
            break
    if env.success():
        writer.save_episode()
        return True
    writer.discard_episode()
    return False


def generate(cfg: GenerateConfig, progress: bool = True) -> dict[str, TaskReport]:
    from hardware.sim import env as sim_env
    from hardware.sim.env import SimConfig, SimEnv
    from hardware.sim.expert import make_expert

    spec = dataset_spec(sim_env, cfg.width, cfg.height)
    reports = {t: TaskReport(wanted=cfg.episodes_per_task) for t in cfg.tasks}
    with DatasetWriter(cfg.out, spec) as writer:
        done: set[tuple[str, int]] = set()
        if writer.num_episodes:
            for e in DatasetReader(cfg.out).episodes:
                if "task" in e.metadata and "seed" in e.metadata:
                    done.add((e.metadata["task"], int(e.metadata["seed"])))
        for task, rep in reports.items():
            rep.had = sum(1 for t, _ in done if t == task)
        bar = _progress(progress)
        with SimEnv(SimConfig(task=cfg.tasks[0], width=cfg.width, height=cfg.height,
                                   scenes=cfg.scenes)) as env, bar:
            overall = bar.add_task("all tasks", total=sum(min(r.had, r.wanted) for r in reports.values())
                                   + sum(max(r.wanted - r.had, 0) for r in reports.values()),
                                   completed=sum(min(r.had, r.wanted) for r in reports.values()), failed=0)
            for task, rep in reports.items():
                row = bar.add_task(task, total=rep.wanted, completed=min(rep.had, rep.wanted), failed=0)
                limit = cfg.seed_offset + int(cfg.max_tries_factor * rep.wanted) + 10
                seed = cfg.seed_offset
                while rep.had + rep.recorded < rep.wanted and seed < limit:
                    if (task, seed) not in done:
                        if seed >= TRAIN_SEED_LIMIT:
                            raise ValueError(f"seed {seed} would reach the evaluation seeds (>= {TRAIN_SEED_LIMIT});"
                                             f" use a smaller --seed-offset")
                        if record_one(env, make_expert, writer, task, seed, spec.fps, cfg.action_noise,
                                      cfg.move_prob, cfg.move_dest_prob):
                            rep.recorded += 1
                            bar.advance(row)
                            bar.advance(overall)
                        else:
                            rep.failed += 1
                            rep.failed_seeds.append(seed)
                            bar.update(row, failed=rep.failed)
                            bar.update(overall, failed=sum(r.failed for r in reports.values()))
                    seed += 1
            bar.update(overall, description="saving")
            writer.wait()
    return reports


def task_list(arg: str) -> list[str]:
    """--tasks: 'all' is the training tasks (evaluation-only tasks are never demonstrated)."""
    from hardware.sim.tasks import TRAINING_TASKS
    return list(TRAINING_TASKS) if arg == "all" else [t.strip() for t in arg.split(",") if t.strip()]


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn
    return Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    disable=not enabled)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="dataset directory (created, or resumed)")
    p.add_argument("--tasks", default="all", help="'all' (the training tasks) or comma-separated task names")
    p.add_argument("--scenes", default="varied", help="varied (objects anywhere in table regions), crowded (varied plus a "
                   "block beside the one to pick) or classic")
    p.add_argument("--episodes-per-task", type=int, required=True)
    p.add_argument("--seed-offset", type=int, default=0, help="first seed tried for every task")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--action-noise", type=float, default=0.0,
                   help="std (rad) of a drifting offset on the executed arm joints; the clean expert action "
                        "is recorded (demonstrations of recoveries). 0: none")
    p.add_argument("--move-prob", type=float, default=0.0,
                   help="share of episodes in which the block is moved 3-5 cm under the descending gripper, "
                        "so the expert's grasp misses and it goes back for it (demonstrations of retrying). "
                        "0: none")
    p.add_argument("--move-dest-prob", type=float, default=0.0,
                   help="share of episodes in which the destination is moved 3-5 cm under the carried block, "
                        "so the expert re-aligns above it before lowering (demonstrations of correcting a "
                        "place). 0: none")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    from hardware.sim.tasks import SCENES, TASKS
    tasks = task_list(a.tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        p.error(f"unknown task(s) {unknown}; choose 'all' or from: {', '.join(TASKS)}")
    if a.scenes not in SCENES:
        p.error(f"unknown --scenes '{a.scenes}'; choose one of: {', '.join(SCENES)}")
    if not 0 <= a.action_noise <= 0.2:
        p.error(f"--action-noise {a.action_noise} is outside [0, 0.2] rad: 0.01-0.05 leaves the expert's path "
                "by about 0.5-2.5 cm at the gripper")
    for flag, value in (("--move-prob", a.move_prob), ("--move-dest-prob", a.move_dest_prob)):
        if not 0 <= value <= 1:
            p.error(f"{flag} {value} is a share of episodes: give a number in [0, 1]")
    if a.episodes_per_task < 1:
        p.error("--episodes-per-task must be at least 1")
    if not 0 <= a.seed_offset < TRAIN_SEED_LIMIT:
        p.error(f"--seed-offset must be in [0, {TRAIN_SEED_LIMIT}): seeds from {TRAIN_SEED_LIMIT} up are "
                f"reserved for evaluation")
    start = time.perf_counter()
    reports = generate(GenerateConfig(out=a.out, tasks=tasks, episodes_per_task=a.episodes_per_task,
                                      seed_offset=a.seed_offset, width=a.width, height=a.height,
                                      scenes=a.scenes, action_noise=a.action_noise, move_prob=a.move_prob,
                                      move_dest_prob=a.move_dest_prob),
                       progress=not a.no_progress)
    short = False
    for task, r in reports.items():
        have = r.had + r.recorded
        short |= have < r.wanted
        print(f"{task:<24} {have}/{r.wanted} episodes ({r.had} already there, {r.recorded} recorded), "
              f"{r.failed} failed" + (f" (seeds {r.failed_seeds[:10]})" if r.failed else ""))
    print(f"dataset {a.out}: {DatasetReader(a.out).num_episodes} episodes; took {time.perf_counter() - start:.0f} s")
    if short:
        print("some tasks have fewer successful episodes than asked for: the expert failed too often",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
