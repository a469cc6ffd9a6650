"""Scripted experts: a fixed sequence of tool-point waypoints per task, solved with IK.

Every episode of a task follows the same strategy (same phases, same durations); only
the object positions differ. Waypoints are interpolated with a smooth (cubic ease)
profile and each tick's IK is warm-started from the previous tick's solution, so joint
targets are smooth and never jump. Waypoints that depend on objects are evaluated when
their phase starts, from the simulation's current state; so are yaws: blocks are grasped
across two faces at whichever quarter turn is nearest the arm's natural wrist pose, the bar
across its length, whatever way the scene turned them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

from hardware.sim.env import SIDES, SimEnv
from hardware.sim.ik import ArmIK, top_down
from hardware.sim.tasks import object_half_height, object_pos, object_yaw

OPEN, CLOSED = 1.0, 0.0
DOWN_X = np.pi        # top-down, fingers closing along world x (the arms' natural wrist pose)
DOWN_Y = np.pi / 2    # top-down, fingers closing along world y
HOVER_Z = 0.12        # tool-point height for moving above objects
GRASP_BELOW_TOP = 0.017  # tool point (pad centre) this far below an object's top when grasping
MIN_TOOL_Z = 0.022       # pads (2 cm half-length) stay just above the table

Vec = Union[np.ndarray, Callable[[SimEnv], np.ndarray]]
Yaw = Union[float, Callable[[SimEnv], float]]


@dataclass
class Pose:
    """Where one arm's tool point should be at the end of a phase."""
    pos: Vec
    yaw: Yaw = DOWN_X
    grip: float = OPEN


@dataclass
class Phase:
    ticks: int
    arms: dict[str, Pose] = field(default_factory=dict)  # an arm not listed keeps its last pose
    # Called when the phase ends: the index of the phase to go to (a retry), or None for the
    # next one. This is how the expert notices a grasp that missed and tries again, so that
    # demonstrations also show the way back from a miss (policy.episodes.generate --move-prob).
    then: Callable[[SimEnv], int | None] | None = None
    descends_on: str | None = None   # the object this phase lowers the open gripper onto (a grasp)
    carries_to: str | None = None    # the destination this phase carries the held object above


DONE = -1               # Phase.then's answer that ends the script
MAX_RETRIES = 2         # per episode; after that the script goes on (the episode fails, is discarded)
ALIGN_TOLERANCE = 0.015  # m: a carry that ends further than this (in x, y) from its destination re-aligns


def _at(obj: str, dx: float = 0.0, dy: float = 0.0, z: float | None = None,
        dz_from_top: float | None = None) -> Callable[[SimEnv], np.ndarray]:
    """A position relative to an object's current pose, evaluated when the phase starts."""
    def fn(env: SimEnv) -> np.ndarray:
        p = object_pos(env.model, env.data, obj)
        if dz_from_top is not None:
            zz = p[2] + object_half_height(env.model, obj) + dz_from_top
        else:
            zz = p[2] if z is None else z
        return np.array([p[0] + dx, p[1] + dy, max(zz, MIN_TOOL_Z)])
    return fn


def _top(obj: str) -> Callable[[SimEnv], float]:
    return lambda env: object_pos(env.model, env.data, obj)[2] + object_half_height(env.model, obj)


def wrap_quarter(angle: float) -> float:
    """angle folded into [-pi/4, pi/4): a cube looks the same every quarter turn."""
    return (angle + np.pi / 4) % (np.pi / 2) - np.pi / 4


def wrap_half(angle: float) -> float:
    """angle folded into [-pi/2, pi/2): a bar looks the same every half turn."""
    return (angle + np.pi / 2) % np.pi - np.pi / 2


def _once(fn: Callable[[SimEnv], float]) -> Callable[[SimEnv], float]:
    """Evaluate fn the first time it is needed and keep that value for the rest of the episode
    (a grasp yaw must not flip a quarter turn because the held block tilted a little), or until
    `.forget()` (a retry: the missed block may have turned)."""
    memo: list[float] = []

    def cached(env: SimEnv) -> float:
        if not memo:
            memo.append(fn(env))
        return memo[0]
    cached.forget = memo.clear
    return cached


def _tool(env: SimEnv, arm: str) -> np.ndarray:
    """The arm's tool point (pad centre) in world coordinates, now."""
    return env.data.site_xpos[env.model.site(f"{arm}/tcp").id]


def _holding(env: SimEnv, arm: str, obj: str) -> bool:
    """The object's centre is within 4 cm of the arm's tool point (a lifted block sits ~1 cm
    under it; one left on the table is 10 cm below after the lift)."""
    return bool(np.linalg.norm(_tool(env, arm) - object_pos(env.model, env.data, obj)) < 0.04)


def _block_grasp_yaw(obj: str) -> Callable[[SimEnv], float]:
    """Fingers closing across two opposite faces of a (square) block, nearest DOWN_X."""
    return _once(lambda env: DOWN_X + wrap_quarter(object_yaw(env.model, env.data, obj) - DOWN_X))


def _bar_yaw(env: SimEnv, bar: str) -> float:
    return wrap_half(object_yaw(env.model, env.data, bar))


def _along(bar: str, offset: float, z: float | None = None, dz_from_top: float | None = None) -> Callable[[SimEnv], np.ndarray]:
    """A point `offset` along the bar's length from its centre (the bar's current pose)."""
    def fn(env: SimEnv) -> np.ndarray:
        yaw = _bar_yaw(env, bar)
        return _at(bar, dx=offset * np.cos(yaw), dy=offset * np.sin(yaw), z=z, dz_from_top=dz_from_top)(env)
    return fn


def _across(bar: str) -> Callable[[SimEnv], float]:
    """Fingers closing across the bar's width (DOWN_Y for a bar along x)."""
    return lambda env: _bar_yaw(env, bar) + np.pi / 2


def pick_and_place(arm: str, obj: str, dest: str, place_gap: float = 0.006) -> list[Phase]:
    """Top-down pick of `obj` at its yaw, put it down on top of `dest` (or drop it from just
    above an open container's rim), release, retreat."""
    grasp = _at(obj, dz_from_top=-GRASP_BELOW_TOP)
    yaw = _block_grasp_yaw(obj)

    def place(env: SimEnv) -> np.ndarray:
        # Tool point such that the held object's bottom ends place_gap above dest's top;
        # the grip offset is measured now, so a grasp that slipped is still placed right.
        p = object_pos(env.model, env.data, dest)
        bottom_to_tool = object_half_height(env.model, obj) + _tool_to_object_z(env, arm, obj)
        return np.array([p[0], p[1], _top(dest)(env) + place_gap + bottom_to_tool])

    def retreat(env: SimEnv) -> np.ndarray:
        return place(env) + np.array([0.0, 0.0, 0.08])

    def after_lift(env: SimEnv) -> int | None:
        if _holding(env, arm, obj):
            return None
        yaw.forget()
        return REHOVER            # missed: above the block where it lies now, open, down again

    def after_carry(env: SimEnv) -> int | None:
        # Above the destination where it lies NOW? If it moved (or the arm drifted) during the
        # carry, first get above it again: lowering from the wrong spot drops the block beside it.
        off = _tool(env, arm)[:2] - object_pos(env.model, env.data, dest)[:2]
        return REALIGN if np.linalg.norm(off) > ALIGN_TOLERANCE else None

    DOWN, PLACE, REHOVER, REALIGN = 1, 5, 8, 9
    carry = Pose(_at(dest, z=HOVER_Z + 0.02), yaw, grip=CLOSED)
    return [
        Phase(15, {arm: Pose(_at(obj, z=HOVER_Z), yaw)}),
        Phase(8, {arm: Pose(grasp, yaw)}, descends_on=obj),                     # DOWN
        Phase(5, {arm: Pose(grasp, yaw, grip=CLOSED)}),
        Phase(8, {arm: Pose(_at(obj, z=HOVER_Z + 0.02), yaw, grip=CLOSED)}, then=after_lift),
        Phase(12, {arm: carry}, then=after_carry, carries_to=dest),
        Phase(7, {arm: Pose(place, yaw, grip=CLOSED)}),                          # PLACE
        Phase(4, {arm: Pose(place, yaw, grip=OPEN)}),
        Phase(7, {arm: Pose(retreat, yaw, grip=OPEN)}, then=lambda env: DONE),
        # only after a miss: short (the arm is already at hover height), then DOWN again
        Phase(8, {arm: Pose(_at(obj, z=HOVER_Z), yaw, grip=OPEN)}, then=lambda env: DOWN),  # REHOVER
        # only after a carry that ended off its destination: above it where it lies now, then PLACE
        Phase(8, {arm: carry}, then=lambda env: PLACE),                          # REALIGN
    ]


def _tool_to_object_z(env: SimEnv, arm: str, obj: str) -> float:
    """How far the tool point sits above the held object's centre (measured now)."""
    return float(_tool(env, arm)[2] - object_pos(env.model, env.data, obj)[2])


def _handover() -> list[Phase]:
    """Left picks the bar by its left half and lifts it to the middle; right grips the right
    half from above; left lets go and backs off; right carries the bar away."""
    bar, grasp_dz, offset = "yellow_bar", -0.010, 0.035
    left_grasp = _along(bar, -offset, dz_from_top=grasp_dz)
    right_grasp = _along(bar, offset, dz_from_top=grasp_dz)
    left_yaw = _once(_across(bar))                 # the bar's yaw on the table, fixed once seen
    right_yaw = _once(_across(bar))                # ... and at the meeting point
    meet = np.array([0.0, 0.30, 0.18])            # the bar's centre during the exchange
    left_at_meet = meet - [offset, 0.0, 0.0]      # (the left wrist turns the bar to lie along x)
    return [
        Phase(14, {"left": Pose(_along(bar, -offset, z=HOVER_Z), yaw=left_yaw),
                   "right": Pose(np.array([0.16, 0.30, 0.24]), yaw=DOWN_Y)}),
        Phase(8, {"left": Pose(left_grasp, yaw=left_yaw)}),
        Phase(5, {"left": Pose(left_grasp, yaw=left_yaw, grip=CLOSED)}),
        Phase(8, {"left": Pose(_along(bar, -offset, z=HOVER_Z), yaw=left_yaw, grip=CLOSED)}),
        Phase(12, {"left": Pose(left_at_meet, yaw=DOWN_Y, grip=CLOSED),
                   "right": Pose(meet + [offset, 0.0, 0.08], yaw=DOWN_Y)}),
        Phase(8, {"right": Pose(right_grasp, yaw=right_yaw)}),
        Phase(5, {"right": Pose(right_grasp, yaw=right_yaw, grip=CLOSED)}),
        Phase(4, {"left": Pose(left_at_meet, yaw=DOWN_Y, grip=OPEN)}),
        Phase(10, {"left": Pose(np.array([-0.16, 0.26, 0.26]), yaw=DOWN_Y, grip=OPEN),
                   "right": Pose(np.array([0.1, 0.30, 0.2]), yaw=DOWN_Y, grip=CLOSED)}),
    ]


SCRIPTS: dict[str, Callable[[], list[Phase]]] = {
    "put_red_on_plate": lambda: pick_and_place("right", "red_block", "plate"),
    "put_blue_on_plate": lambda: pick_and_place("right", "blue_block", "plate"),
    "handover_bar": _handover,
    "stack_green_on_purple": lambda: pick_and_place("left", "green_block", "purple_block"),
    "put_green_in_cup": lambda: pick_and_place("left", "green_block", "cup", place_gap=0.012),
    "stack_red_on_purple": lambda: pick_and_place("right", "red_block", "purple_block"),
    "stack_orange_on_purple": lambda: pick_and_place("right", "orange_block", "purple_block"),
    "put_orange_on_plate": lambda: pick_and_place("right", "orange_block", "plate"),
    "put_blue_on_purple": lambda: pick_and_place("right", "blue_block", "purple_block"),
}


def _smooth(s: float) -> float:
    return s * s * (3.0 - 2.0 * s)


class Expert:
    """Produces the next 14-d joint target each call of act(); call once per env.step()."""

    def __init__(self, env: SimEnv, phases: list[Phase] | None = None):
        """phases: a script of your own (e.g. pick_and_place of another block); default: the task's."""
        if phases is None and env.task.name not in SCRIPTS:
            raise ValueError(f"no scripted expert for task '{env.task.name}'; have: {', '.join(SCRIPTS)}")
        self.env = env
        self.phases = SCRIPTS[env.task.name]() if phases is None else phases
        self.ik = {s: ArmIK(env.model, s) for s in SIDES}
        target = env.target.astype(np.float64)
        self.q = {s: target[7 * i:7 * i + 6].copy() for i, s in enumerate(SIDES)}
        self.grip = {s: float(target[7 * i + 6]) for i, s in enumerate(SIDES)}
        # Commanded tool-point pose per arm (position, yaw); home points straight down.
        self.pose = {s: (self.ik[s].forward(self.q[s])[0], DOWN_X) for s in SIDES}
        self.phase_index = -1
        self.tick_in_phase = 0
        self.retries = 0                # times this episode went back (a grasp tried again, a place re-aligned)
        self._start: dict[str, tuple[np.ndarray, float, float]] = {}
        self._goal: dict[str, tuple[np.ndarray, float, float]] = {}

    @property
    def descending_on(self) -> str | None:
        """The object the gripper is being lowered onto now (its position already taken), or None."""
        return None if self.done or self.phase_index < 0 else self.phases[self.phase_index].descends_on

    @property
    def carrying_to(self) -> str | None:
        """The destination the held object is being carried above now (its position already taken), or None."""
        return None if self.done or self.phase_index < 0 else self.phases[self.phase_index].carries_to

    @property
    def done(self) -> bool:
        """True once the script has finished (the expert then holds its last pose)."""
        return self.phase_index >= len(self.phases)

    def act(self) -> np.ndarray:
        if self.phase_index < 0 or (not self.done and self.tick_in_phase >= self.phases[self.phase_index].ticks):
            self._begin_phase(self._next_phase())
        if not self.done:
            self.tick_in_phase += 1
            ticks = self.phases[self.phase_index].ticks
            s = _smooth(self.tick_in_phase / ticks)
            g = min(1.0, self.tick_in_phase / max(1, ticks - 1))   # grippers: linear, done a tick early
            for arm, (p0, yaw0, g0) in self._start.items():
                p1, yaw1, g1 = self._goal[arm]
                pos, yaw = p0 + s * (p1 - p0), yaw0 + s * (yaw1 - yaw0)
                self.q[arm] = self.ik[arm].solve(self.q[arm], pos, top_down(yaw))
                self.grip[arm] = g0 + (g1 - g0) * g
                self.pose[arm] = (pos, yaw)
        return np.concatenate([np.append(self.q[s], self.grip[s]) for s in SIDES]).astype(np.float32)

    def _next_phase(self) -> int:
        """The phase after the current one: the next, or where the current phase's `then` says
        (a retry, at most MAX_RETRIES times per episode; DONE ends the script)."""
        if self.phase_index < 0 or self.phases[self.phase_index].then is None:
            return self.phase_index + 1
        index = self.phases[self.phase_index].then(self.env)
        if index is None:
            return self.phase_index + 1
        if index == DONE:
            return len(self.phases)
        if index <= self.phase_index:           # going back: a retry
            if self.retries >= MAX_RETRIES:
                return self.phase_index + 1
            self.retries += 1
        return index

    def _begin_phase(self, index: int) -> None:
        self.phase_index = index
        self.tick_in_phase = 0
        self._start, self._goal = {}, {}
        if self.done:
            return
        for arm, pose in self.phases[index].arms.items():
            pos = pose.pos(self.env) if callable(pose.pos) else np.asarray(pose.pos, dtype=np.float64)
            yaw = float(pose.yaw(self.env)) if callable(pose.yaw) else float(pose.yaw)
            p0, yaw0 = self.pose[arm]
            self._start[arm] = (p0.copy(), yaw0, self.grip[arm])
            self._goal[arm] = (np.asarray(pos, dtype=np.float64), yaw, pose.grip)


def make_expert(env: SimEnv) -> Expert:
    """The scripted expert for env's current task; create it right after env.reset()."""
    return Expert(env)


@dataclass
class EpisodeResult:
    success: bool
    steps: int                 # control ticks run
    success_step: int | None   # first tick at which the task counted as done


def run_expert_episode(env: SimEnv, task: str | None = None, seed: int | None = None,
                       on_step: Callable[[np.ndarray], None] | None = None) -> EpisodeResult:
    """Reset, then run the expert until the task is done and the script finished, or max_steps.

    Success means the task's check holds at the end of the episode.
    on_step(action) is called after every env.step (e.g. to render and record a frame).
    """
    env.reset(task=task, seed=seed)
    expert = make_expert(env)
    success_step = None
    steps = 0
    for steps in range(1, env.task.max_steps + 1):
        action = expert.act()
        env.step(action)
        if on_step is not None:
            on_step(action)
        if success_step is None and env.success():
            success_step = steps
        if success_step is not None and expert.done:
            break
    return EpisodeResult(success=env.success(), steps=steps, success_step=success_step)
