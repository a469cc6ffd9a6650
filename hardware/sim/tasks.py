"""The sim tasks: which objects are on the table, where (from the seed), what the
instruction is, and when the task counts as done.

All objects live in assets/sim/aloha_tabletop.xml; an object a task does not use stays
parked on the floor behind the robot, out of every camera's view, so one compiled model
(and one renderer) serves every task.

Two kinds of scenes (SimConfig.scenes):
  classic  each object jittered a few cm around a fixed slot, no yaw: what the shipped sim-tiny
           checkpoint was trained on (a small policy, trained on a CPU in an hour).
  varied   objects anywhere in regions of the table, random block yaw, a minimum spacing and
           at least one distractor no instruction names (hardware/sim/scenes.py).

Task.training is False for evaluation-only tasks (TRAINING_TASKS leaves them out): they
compose skills the training tasks teach separately, so a policy can only do them by following
the words.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import mujoco
import numpy as np

from hardware.sim import scenes as sc
from hardware.sim.scenes import Placement, SceneSpec

# name -> (x, y) or (x, y, yaw) on the table; z is set from the object's size so it rests on the top.
Layout = dict[str, tuple[float, ...]]
SCENES = ("classic", "varied", "crowded")   # crowded: varied plus SceneSpec.crowd in the task's regions

TABLE_TOP_Z = 0.0
PAD_GEOMS = {side: (f"{side}/left_pad", f"{side}/right_pad") for side in ("left", "right")}


@dataclass(frozen=True)
class Task:
    name: str
    instructions: tuple[str, ...]       # [0] is canonical, the rest are paraphrases
    max_steps: int                      # control ticks at 10 Hz
    objects: tuple[str, ...]            # bodies this task places on the table (in the order its layouts draw them)
    moved: str                          # the object the task moves (the block, the bar)
    destination: str | None             # where it must end up (plate, purple block, cup); None: a hand-over
    arms: tuple[str, ...]               # arms the expert uses
    layout: Callable[[np.random.Generator, float], Layout]   # the classic scene
    check: Callable[[mujoco.MjModel, mujoco.MjData], bool]
    varied: SceneSpec | None = None     # how varied scenes are drawn
    training: bool = True               # False: evaluation-only, never demonstrated (not in TRAINING_TASKS)

    @property
    def instruction(self) -> str:
        return self.instructions[0]

    def scene_layout(self, rng: np.random.Generator, jitter: float = 1.0, scenes: str = "classic") -> Layout:
        """Where the objects go. jitter scales the classic layout's randomisation, and a varied
        scene's task-object regions about their centres (1.5: beyond the demonstrations' range)."""
        if scenes == "classic":
            return self.layout(rng, jitter)
        if scenes in ("varied", "crowded"):
            if self.varied is None:
                raise ValueError(f"task '{self.name}' has no varied scenes")
            return sc.varied_layout(self.varied, rng, spread=jitter, crowded=scenes == "crowded")
        raise ValueError(f"unknown scenes '{scenes}'; choose one of: {', '.join(SCENES)}")

    def place_objects(self, model: mujoco.MjModel, data: mujoco.MjData,
                      rng: np.random.Generator, jitter: float = 1.0, scenes: str = "classic") -> Layout:
        layout = self.scene_layout(rng, jitter, scenes)
        for name, pose in layout.items():
            set_object_pose(model, data, name, *pose)
        return layout

    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        return bool(self.check(model, data))


# -- helpers used by layouts, success checks and experts ----------------------------------
def object_half_height(model: mujoco.MjModel, name: str) -> float:
    """Half the height of body `name` (upright geoms; the body origin is its vertical centre)."""
    body = model.body(name)
    top = 0.0
    for g in range(body.geomadr[0], body.geomadr[0] + body.geomnum[0]):
        half = model.geom_size[g][1] if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_CYLINDER else model.geom_size[g][2]
        top = max(top, float(model.geom_pos[g][2] + half))
    return top


def set_object_pose(model: mujoco.MjModel, data: mujoco.MjData, name: str, x: float, y: float,
                    yaw: float = 0.0) -> None:
    adr = model.joint(name).qposadr[0]
    z = TABLE_TOP_Z + object_half_height(model, name) + 5e-4
    quat = (1.0, 0.0, 0.0, 0.0) if yaw == 0.0 else (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
    data.qpos[adr:adr + 7] = (x, y, z, *quat)
    data.qvel[model.joint(name).dofadr[0]:model.joint(name).dofadr[0] + 6] = 0.0


def object_pos(model: mujoco.MjModel, data: mujoco.MjData, name: str) -> np.ndarray:
    return data.xpos[model.body(name).id].copy()


def object_yaw(model: mujoco.MjModel, data: mujoco.MjData, name: str) -> float:
    """Rotation of the body about the vertical (rad, from its x axis)."""
    rot = data.xmat[model.body(name).id].reshape(3, 3)
    return float(math.atan2(rot[1, 0], rot[0, 0]))


def touching(model: mujoco.MjModel, data: mujoco.MjData, geom_a: str, geom_b: str) -> bool:
    a, b = model.geom(geom_a).id, model.geom(geom_b).id
    for i in range(data.ncon):
        c = data.contact[i]
        if (c.geom1 == a and c.geom2 == b) or (c.geom1 == b and c.geom2 == a):
            return True
    return False


def held_by(model: mujoco.MjModel, data: mujoco.MjData, obj: str, side: str) -> bool:
    """Both finger pads of `side` touch the object."""
    return all(touching(model, data, pad, obj) for pad in PAD_GEOMS[side])


def touched_by(model: mujoco.MjModel, data: mujoco.MjData, obj: str, side: str) -> bool:
    return any(touching(model, data, pad, obj) for pad in PAD_GEOMS[side])


def _free(model, data, obj: str) -> bool:
    return not (touched_by(model, data, obj, "left") or touched_by(model, data, obj, "right"))


def _jitter(rng: np.random.Generator, center: tuple[float, float], scale: float, amount: float) -> tuple[float, float]:
    dx, dy = rng.uniform(-amount, amount, size=2) * scale
    return (center[0] + float(dx), center[1] + float(dy))


# -- put the COLOUR block on the plate (needs the language: the other block is always there) --
BLOCK_SLOTS = ((0.0, 0.27), (0.13, 0.27))
PLATE_CENTER = (0.27, 0.42)
PLATE_RADIUS = 0.07


def _two_blocks_layout(rng: np.random.Generator, jitter: float, blocks=("red_block", "blue_block")) -> Layout:
    order = blocks if rng.random() < 0.5 else blocks[::-1]
    layout = {name: _jitter(rng, slot, jitter, 0.025) for name, slot in zip(order, BLOCK_SLOTS, strict=True)}
    layout["plate"] = _jitter(rng, PLATE_CENTER, jitter, 0.02)
    return layout


def _on_plate(block: str) -> Callable[[mujoco.MjModel, mujoco.MjData], bool]:
    def check(model, data) -> bool:
        b, p = object_pos(model, data, block), object_pos(model, data, "plate")
        near = np.linalg.norm(b[:2] - p[:2]) < PLATE_RADIUS - 0.015
        resting = b[2] < p[2] + object_half_height(model, "plate") + object_half_height(model, block) + 0.01
        return bool(near and resting and _free(model, data, block))
    return check


def _place_task(colour: str, pair: tuple[str, str], pool: tuple[str, ...]) -> Task:
    """The right arm puts the `colour` block on the plate. Both blocks of `pair` (colours, in the
    order the layouts draw them) lie in its block region, so the colour word decides which one."""
    block = f"{colour}_block"
    first, second = (f"{c}_block" for c in pair)
    return Task(
        name=f"put_{colour}_on_plate",
        instructions=(f"put the {colour} block on the plate",
                      f"place the {colour} cube onto the plate",
                      f"move the {colour} block to the plate",
                      f"pick up the {colour} cube and set it down on the plate",
                      f"put the {colour} one on the white plate"),
        max_steps=100, objects=(first, second, "plate"), moved=block, destination="plate", arms=("right",),
        layout=lambda rng, jitter: _two_blocks_layout(rng, jitter, (first, second)), check=_on_plate(block),
        varied=SceneSpec(placements=(Placement(first, sc.RIGHT_BLOCKS), Placement(second, sc.RIGHT_BLOCKS),
                                     Placement("plate", sc.RIGHT_PLATE, sc.NO_YAW)),
                         pool=pool, crowd=(Placement("purple_block", sc.RIGHT_BLOCKS),)))


# -- hand the yellow bar from the left arm to the right arm (needs both arms) ---------------
BAR_CENTER = (-0.2, 0.28)


def _bar_layout(rng: np.random.Generator, jitter: float) -> Layout:
    return {"yellow_bar": _jitter(rng, BAR_CENTER, jitter, 0.025)}


def _bar_handed_over(model, data) -> bool:
    lifted = object_pos(model, data, "yellow_bar")[2] > 0.08
    return bool(lifted and held_by(model, data, "yellow_bar", "right")
                and not touched_by(model, data, "yellow_bar", "left"))


# -- stack one block on another ---------------------------------------------------------------
GREEN_CENTER = (-0.2, 0.24)
PURPLE_CENTER = (-0.07, 0.34)


def _stack_layout(rng: np.random.Generator, jitter: float) -> Layout:
    return {"green_block": _jitter(rng, GREEN_CENTER, jitter, 0.025),
            "purple_block": _jitter(rng, PURPLE_CENTER, jitter, 0.025)}


def _stacked_on(top: str, bottom: str) -> Callable[[mujoco.MjModel, mujoco.MjData], bool]:
    def check(model, data) -> bool:
        t, b = object_pos(model, data, top), object_pos(model, data, bottom)
        expected_z = b[2] + object_half_height(model, bottom) + object_half_height(model, top)
        aligned = np.linalg.norm(t[:2] - b[:2]) < 0.025   # centre over the bottom block's top
        on_top = abs(t[2] - expected_z) < 0.01
        return bool(aligned and on_top and _free(model, data, top))
    return check


_stacked = _stacked_on("green_block", "purple_block")


def _right_stack_on_purple(colour: str, name: str, instructions: tuple[str, ...], pool: tuple[str, ...],
                           distractors: tuple[str, ...] = (), extra: tuple[int, int] = (1, 2),
                           training: bool = True, crowd: str = "blue_block") -> Task:
    """The right arm stacks a block on the purple one; both lie in its block region, the plate too."""
    block = f"{colour}_block"
    return Task(
        name=name, instructions=instructions, max_steps=100, objects=(block, "purple_block", "plate"),
        moved=block, destination="purple_block", arms=("right",),
        layout=lambda rng, jitter: _two_blocks_layout(rng, jitter, (block, "purple_block")),
        check=_stacked_on(block, "purple_block"), training=training,
        varied=SceneSpec(placements=(Placement(block, sc.RIGHT_BLOCKS), Placement("purple_block", sc.RIGHT_BLOCKS),
                                     Placement("plate", sc.RIGHT_PLATE, sc.NO_YAW)),
                         distractors=distractors, pool=pool, extra=extra,
                         crowd=(Placement(crowd, sc.RIGHT_BLOCKS),)))


# -- put the green block in the cup (left arm) --------------------------------------------------
CUP_CENTER = (-0.09, 0.38)
CUP_INNER_RADIUS = 0.039


def _cup_layout(rng: np.random.Generator, jitter: float) -> Layout:
    return {"green_block": _jitter(rng, GREEN_CENTER, jitter, 0.025),
            "cup": _jitter(rng, CUP_CENTER, jitter, 0.02)}


def _in_cup(block: str) -> Callable[[mujoco.MjModel, mujoco.MjData], bool]:
    def check(model, data) -> bool:
        b, c = object_pos(model, data, block), object_pos(model, data, "cup")
        upright = data.xmat[model.body("cup").id][8] > 0.9
        inside = np.linalg.norm(b[:2] - c[:2]) < CUP_INNER_RADIUS - 0.01
        below_rim = b[2] < c[2] + object_half_height(model, "cup")
        return bool(upright and inside and below_rim and _free(model, data, block))
    return check


TASKS: dict[str, Task] = {t.name: t for t in (
    _place_task("red", ("red", "blue"), pool=("green_block", "purple_block", "orange_block", "cup")),
    _place_task("blue", ("red", "blue"), pool=("green_block", "purple_block", "orange_block", "cup")),
    Task(name="handover_bar",
         instructions=("hand the yellow bar from the left arm to the right arm",
                       "pass the yellow bar to the right gripper",
                       "transfer the yellow bar from the left hand to the right hand",
                       "give the yellow bar to the right arm",
                       "pick up the yellow bar with the left arm and hand it to the right arm"),
         max_steps=120, objects=("yellow_bar",), moved="yellow_bar", destination=None, arms=("left", "right"),
         layout=_bar_layout, check=_bar_handed_over,
         varied=SceneSpec(placements=(Placement("yellow_bar", sc.BAR, sc.BAR_YAW),),
                          pool=("red_block", "blue_block", "green_block", "purple_block", "orange_block",
                                "cup", "plate"))),
    Task(name="stack_green_on_purple",
         instructions=("stack the green block on the purple block",
                       "put the green cube on top of the purple cube",
                       "place the green block onto the purple one",
                       "stack the green cube on the purple cube",
                       "pick up the green block and put it on the purple block"),
         max_steps=100, objects=("green_block", "purple_block"), moved="green_block", destination="purple_block",
         arms=("left",),
         layout=_stack_layout, check=_stacked,
         varied=SceneSpec(placements=(Placement("green_block", sc.LEFT_BLOCKS),
                                      Placement("purple_block", sc.LEFT_BLOCKS)),
                          pool=("red_block", "blue_block", "orange_block", "cup", "plate"),
                          crowd=(Placement("blue_block", sc.LEFT_BLOCKS),))),
    Task(name="put_green_in_cup",
         instructions=("put the green block in the cup",
                       "place the green cube into the cup",
                       "drop the green block into the cup",
                       "pick up the green cube and put it in the cup",
                       "put the green one in the cup"),
         max_steps=100, objects=("green_block", "cup"), moved="green_block", destination="cup", arms=("left",),
         layout=_cup_layout, check=_in_cup("green_block"),
         varied=SceneSpec(placements=(Placement("green_block", sc.LEFT_BLOCKS),
                                      Placement("cup", sc.LEFT_CUP, sc.NO_YAW)),
                          pool=("red_block", "blue_block", "purple_block", "orange_block", "plate"),
                          crowd=(Placement("purple_block", sc.LEFT_BLOCKS),))),
    # The right arm stacks too, red and orange on purple: with red and blue both placed on the plate,
    # the (block, destination) pairs the right arm is taught fill a 3 x 2 grid but for one cell.
    _right_stack_on_purple("red", "stack_red_on_purple",
                           ("stack the red block on the purple block",
                            "put the red cube on top of the purple cube",
                            "place the red block onto the purple one",
                            "stack the red cube on the purple cube",
                            "pick up the red block and put it on the purple block"),
                           pool=("blue_block", "green_block", "orange_block", "cup")),
    # Orange on purple, with red always on the table: a purple destination no longer means "red",
    # so the right arm must read the colour word of a stack as it already does for the plate.
    _right_stack_on_purple("orange", "stack_orange_on_purple",
                           ("stack the orange block on the purple block",
                            "put the orange cube on top of the purple cube",
                            "place the orange block onto the purple one",
                            "stack the orange cube on the purple cube",
                            "pick up the orange block and put it on the purple block"),
                           distractors=("red_block",), pool=("blue_block", "green_block", "cup"), extra=(0, 1)),
    # Orange on the plate, beside red: orange, like red, now goes to either destination as the
    # words say, so of the right arm's blocks only blue has a single taught destination.
    _place_task("orange", ("orange", "red"), pool=("blue_block", "green_block", "purple_block", "cup")),
    # Evaluation-only, the grid's empty cell: blue has only ever gone on the plate and only red, orange
    # (right arm) and green (left arm) on purple. The plate and the green block are always there, so
    # habit alone picks wrong.
    _right_stack_on_purple("blue", "put_blue_on_purple",
                           ("put the blue block on the purple block",
                            "stack the blue block on the purple block",
                            "place the blue cube on top of the purple cube",
                            "put the blue cube onto the purple one",
                            "pick up the blue block and put it on the purple block"),
                           distractors=("green_block",), pool=("red_block", "orange_block", "cup"), extra=(0, 1),
                           training=False, crowd="red_block"),
)}
TRAINING_TASKS: tuple[str, ...] = tuple(name for name, task in TASKS.items() if task.training)
EVALUATION_ONLY_TASKS: tuple[str, ...] = tuple(name for name, task in TASKS.items() if not task.training)


def tasks_taught_by(instructions) -> list[str]:
    """Training tasks (in TASKS order) one of whose own instructions is among `instructions` (a
    checkpoint's training instructions; case and outer spaces ignored)."""
    have = {t.strip().lower() for t in instructions}
    return [name for name, task in TASKS.items() if task.training
            and any(i.strip().lower() in have for i in (task.instruction, *task.instructions))]


DEFAULT_TASK = "put_red_on_plate"
# Seeds split the layouts: demonstrations use seeds below this, evaluation (policy.evaluate,
# app.tools.bench_live) seeds from it upward, so no evaluated scene was ever demonstrated.
EVAL_SEED_BASE = 1_000_000
