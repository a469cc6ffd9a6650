"""The sim tasks: which objects are on the table, where (from the seed), what the
instruction is, and when the task counts as done.

All objects live in assets/sim/aloha_tabletop.xml; an object a task does not use stays
parked on the floor behind the robot, out of every camera's view, so one compiled model
(and one renderer) serves every task.

Randomisation is modest on purpose (a few cm): a small policy is trained on these tasks
on a CPU in an hour.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mujoco
import numpy as np

# name -> (x, y) on the table; z is set from the object's size so it rests on the top.
Layout = dict[str, tuple[float, float]]

TABLE_TOP_Z = 0.0
PAD_GEOMS = {side: (f"{side}/left_pad", f"{side}/right_pad") for side in ("left", "right")}


@dataclass(frozen=True)
class Task:
    name: str
    instructions: tuple[str, ...]       # [0] is canonical, the rest are paraphrases
    max_steps: int                      # control ticks at 10 Hz
    objects: tuple[str, ...]            # bodies this task places on the table
    arms: tuple[str, ...]               # arms the expert uses
    layout: Callable[[np.random.Generator, float], Layout]
    check: Callable[[mujoco.MjModel, mujoco.MjData], bool]

    @property
    def instruction(self) -> str:
        return self.instructions[0]

    def place_objects(self, model: mujoco.MjModel, data: mujoco.MjData,
                      rng: np.random.Generator, jitter: float = 1.0) -> None:
        for name, (x, y) in self.layout(rng, jitter).items():
            set_object_pose(model, data, name, x, y)

    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        return bool(self.check(model, data))


# -- helpers used by layouts, success checks and experts ----------------------------------
def object_half_height(model: mujoco.MjModel, name: str) -> float:
    geom = model.geom(name)
    if geom.type[0] == mujoco.mjtGeom.mjGEOM_CYLINDER:
        return float(geom.size[1])
    return float(geom.size[2])


def set_object_pose(model: mujoco.MjModel, data: mujoco.MjData, name: str, x: float, y: float) -> None:
    adr = model.joint(name).qposadr[0]
    z = TABLE_TOP_Z + object_half_height(model, name) + 5e-4
    data.qpos[adr:adr + 7] = (x, y, z, 1.0, 0.0, 0.0, 0.0)
    data.qvel[model.joint(name).dofadr[0]:model.joint(name).dofadr[0] + 6] = 0.0


def object_pos(model: mujoco.MjModel, data: mujoco.MjData, name: str) -> np.ndarray:
    return data.xpos[model.body(name).id].copy()


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


def _two_blocks_layout(rng: np.random.Generator, jitter: float) -> Layout:
    order = ("red_block", "blue_block") if rng.random() < 0.5 else ("blue_block", "red_block")
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


def _place_task(colour: str) -> Task:
    block = f"{colour}_block"
    return Task(
        name=f"put_{colour}_on_plate",
        instructions=(f"put the {colour} block on the plate",
                      f"place the {colour} cube onto the plate",
                      f"move the {colour} block to the plate",
                      f"pick up the {colour} cube and set it down on the plate",
                      f"put the {colour} one on the white plate"),
        max_steps=100, objects=("red_block", "blue_block", "plate"), arms=("right",),
        layout=_two_blocks_layout, check=_on_plate(block))


# -- hand the yellow bar from the left arm to the right arm (needs both arms) ---------------
BAR_CENTER = (-0.2, 0.28)


def _bar_layout(rng: np.random.Generator, jitter: float) -> Layout:
    return {"yellow_bar": _jitter(rng, BAR_CENTER, jitter, 0.025)}


def _bar_handed_over(model, data) -> bool:
    lifted = object_pos(model, data, "yellow_bar")[2] > 0.08
    return bool(lifted and held_by(model, data, "yellow_bar", "right")
                and not touched_by(model, data, "yellow_bar", "left"))


# -- stack the green block on the purple block (left arm) ------------------------------------
GREEN_CENTER = (-0.2, 0.24)
PURPLE_CENTER = (-0.07, 0.34)


def _stack_layout(rng: np.random.Generator, jitter: float) -> Layout:
    return {"green_block": _jitter(rng, GREEN_CENTER, jitter, 0.025),
            "purple_block": _jitter(rng, PURPLE_CENTER, jitter, 0.025)}


def _stacked(model, data) -> bool:
    g, p = object_pos(model, data, "green_block"), object_pos(model, data, "purple_block")
    expected_z = p[2] + object_half_height(model, "purple_block") + object_half_height(model, "green_block")
    aligned = np.linalg.norm(g[:2] - p[:2]) < 0.025   # centre over the purple top (half-size 0.026)
    on_top = abs(g[2] - expected_z) < 0.01
    return bool(aligned and on_top and _free(model, data, "green_block"))


TASKS: dict[str, Task] = {t.name: t for t in (
    _place_task("red"),
    _place_task("blue"),
    Task(name="handover_bar",
         instructions=("hand the yellow bar from the left arm to the right arm",
                       "pass the yellow bar to the right gripper",
                       "transfer the yellow bar from the left hand to the right hand",
                       "give the yellow bar to the right arm",
                       "pick up the yellow bar with the left arm and hand it to the right arm"),
         max_steps=120, objects=("yellow_bar",), arms=("left", "right"),
         layout=_bar_layout, check=_bar_handed_over),
    Task(name="stack_green_on_purple",
         instructions=("stack the green block on the purple block",
                       "put the green cube on top of the purple cube",
                       "place the green block onto the purple one",
                       "stack the green cube on the purple cube",
                       "pick up the green block and put it on the purple block"),
         max_steps=100, objects=("green_block", "purple_block"), arms=("left",),
         layout=_stack_layout, check=_stacked),
)}
DEFAULT_TASK = "put_red_on_plate"
