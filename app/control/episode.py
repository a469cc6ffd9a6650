"""One rollout as an operator runs it, on the wall clock: reset the scene, type the instruction,
START, and wait until the controller ends it (the task's check succeeded, or its time limit
passed); the arm then holds. Used by the live benchmark (app/tools/bench_live.py) and the
real-clock evaluation (policy/evaluation/closed_loop.py), against a running Controller (its
thread started, a policy link to a real server) and a running simulated robot."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.control.controller import Controller
from app.control.records import ChunkRecord, Mode


@dataclass
class Rollout:
    task: str
    seed: int
    instruction: str
    outcome: str                               # "succeeded", "timed out", or why it ended otherwise
    ticks: int
    chunks: list[ChunkRecord] = field(default_factory=list)
    clipped: int = 0                           # SafeArm's clipped + rate-limited commands in this rollout
    seconds: float = 0.0
    robot_ticks: int | None = None             # control ticks the robot's own clock advanced (a sim's
                                               # physics; None if it has no such count): below `ticks`
                                               # when a busy machine slowed the simulated world

    @property
    def realtime_factor(self) -> float | None:
        """Simulated time per wall-clock time over the rollout (1.0: the world kept real time)."""
        return None if self.robot_ticks is None or not self.ticks else self.robot_ticks / self.ticks

    @property
    def success(self) -> bool:
        return self.outcome == "succeeded"

    @property
    def latency_ms(self) -> list[float]:
        return [c.latency_ms for c in self.chunks]


def task_time_limit_s(task, control_hz: float, max_steps: int | None = None) -> float:
    """A sim task's time limit: its max_steps (or fewer) at the control rate."""
    steps = task.max_steps if max_steps is None else min(max_steps, task.max_steps)
    return steps / control_hz


def run_rollout(controller: Controller, robot, task: str, seed: int, instruction: str, *,
                max_steps: int | None = None, poll_s: float = 0.05) -> Rollout:
    """robot: a hardware.sim.robot.SimRobot (reset, success, task). Blocks until the rollout ends."""
    robot.reset(task=task, seed=seed)
    controller.arm.rebase()                      # the reset moved the arm: forget the last grip
    controller.stop()                            # hold the new home pose, as the console's reset does
    limit = task_time_limit_s(robot.task, controller.config.control_hz, max_steps)
    controller.set_success_check(robot.success)
    controller.set_time_limit(limit)
    controller.set_instruction(instruction)
    chunks: list[ChunkRecord] = []
    before = controller.status()
    controller.add_chunk_listener(chunks.append)
    started = time.monotonic()
    robot_ticks = getattr(robot, "ticks", None)
    try:
        controller.start_policy()
        deadline = started + limit + 30.0          # the controller's own limit ends it first
        while controller.status().mode == Mode.POLICY and time.monotonic() < deadline:
            time.sleep(poll_s)
        if controller.status().mode == Mode.POLICY:   # only if the controller's own end never came
            controller.stop()
        after = controller.status()
    finally:
        controller.remove_chunk_listener(chunks.append)
    outcome = after.outcome or (after.last_error or after.notice or "ended")
    clipped = (after.safety.clipped + after.safety.rate_limited) - (before.safety.clipped + before.safety.rate_limited)
    robot_ticks = None if robot_ticks is None else robot.ticks - robot_ticks
    return Rollout(task, seed, instruction, outcome, after.tick - before.tick, chunks, int(clipped),
                   time.monotonic() - started, robot_ticks)


