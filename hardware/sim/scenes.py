"""Varied scenes: object positions drawn over real regions of the table, random yaw, distractors.

A task's "classic" layout (tasks.py) jitters each object a few cm around a fixed slot: the
shipped sim-tiny checkpoint was trained on exactly those. A "varied" layout (this module) draws
every object the task uses anywhere in a region of the table (blocks: at least 20 x 12 cm),
turns blocks to a random yaw, keeps a minimum spacing between every pair of objects (so an open
gripper never lands on a neighbour), and adds distractors: objects that no instruction of the
episode names, placed anywhere in the head camera's view of the table.

Regions are chosen so that the arm that does the task reaches every grasp and place pose with
a top-down gripper at any of the yaws the expert uses (tests/hardware/sim/test_scenes.py checks
it with the IK). Sampling is rejection sampling from the episode's seed, hence deterministic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# name -> (x, y) or (x, y, yaw) on the table (tasks.Layout)
Layout = dict[str, tuple[float, ...]]

# Bounding-circle radius of each object's footprint (half-diagonal for boxes), from the MJCF.
FOOTPRINT = {
    "red_block": 0.0283, "blue_block": 0.0283, "orange_block": 0.0283,
    "green_block": 0.0255, "purple_block": 0.0368,
    "plate": 0.07, "cup": 0.045, "yellow_bar": 0.0716,
}
# Free space kept between two objects' footprints: an open finger pad reaches 4.2 cm from the
# grasp centre, i.e. ~1.4 cm beyond a block's corner; 3.5 cm leaves room to spare.
CLEARANCE = 0.035
BLOCK_YAW = (-math.pi / 4, math.pi / 4)   # a cube looks the same every quarter turn
BAR_YAW = (-0.5, 0.5)                     # the handover grasps the bar across its length
NO_YAW = (0.0, 0.0)                       # round things


@dataclass(frozen=True)
class Region:
    """An axis-aligned rectangle of the table top (world metres)."""
    x: tuple[float, float]
    y: tuple[float, float]

    @property
    def size(self) -> tuple[float, float]:
        return (self.x[1] - self.x[0], self.y[1] - self.y[0])

    def contains(self, x: float, y: float) -> bool:
        return self.x[0] <= x <= self.x[1] and self.y[0] <= y <= self.y[1]

    def sample(self, rng: np.random.Generator) -> tuple[float, float]:
        return (float(rng.uniform(*self.x)), float(rng.uniform(*self.y)))

    def scaled(self, factor: float, within: "Region") -> "Region":
        """This rectangle grown (or shrunk) by `factor` about its centre, clipped to `within`."""
        if factor == 1.0:
            return self
        cx, cy = (self.x[0] + self.x[1]) / 2, (self.y[0] + self.y[1]) / 2
        hx, hy = factor * self.size[0] / 2, factor * self.size[1] / 2
        return Region((max(within.x[0], cx - hx), min(within.x[1], cx + hx)),
                      (max(within.y[0], cy - hy), min(within.y[1], cy + hy)))


# The right arm's base is at x = +0.3, the left arm's at x = -0.3 (both at y = 0, facing +y).
RIGHT_BLOCKS = Region((-0.01, 0.21), (0.185, 0.315))   # 22 x 13 cm
RIGHT_PLATE = Region((0.08, 0.32), (0.34, 0.48))       # 24 x 14 cm (plate centre)
LEFT_BLOCKS = Region((-0.27, -0.05), (0.185, 0.315))   # 22 x 13 cm
LEFT_CUP = Region((-0.30, -0.06), (0.34, 0.48))        # 24 x 14 cm (cup centre)
BAR = Region((-0.30, -0.10), (0.20, 0.32))             # 20 x 12 cm (bar centre)
TABLE = Region((-0.34, 0.34), (0.14, 0.52))            # what the head camera sees of the table


@dataclass(frozen=True)
class Placement:
    name: str
    region: Region
    yaw: tuple[float, float] = BLOCK_YAW


@dataclass(frozen=True)
class SceneSpec:
    """How a task's varied scenes are drawn.

    placements: the objects the task needs, each in its own region (reachable by the task's arm);
    distractors: always added, anywhere on the table; pool / extra: a further (lo..hi) objects
    drawn from the pool. None of the distractors may be named by the task's instructions.
    crowd: crowded scenes only (scenes="crowded"): objects added in the task's own regions, beside
    the ones it uses (a purple block beside the blue one to pick), taken out of the pool. Why: in
    varied scenes what lies in the arm's region nearly tells the task (purple there: a stack), so
    a policy can follow the scene instead of the words; crowded scenes take that away.
    """
    placements: tuple[Placement, ...]
    distractors: tuple[str, ...] = ()
    pool: tuple[str, ...] = ()
    extra: tuple[int, int] = (1, 2)
    crowd: tuple[Placement, ...] = ()

    def __post_init__(self):
        names = [p.name for p in self.placements] + list(self.distractors)
        if len(set(names)) != len(names) or set(self.pool) & set(names):
            raise ValueError(f"an object appears twice in the scene spec: {names} / pool {self.pool}")
        if {c.name for c in self.crowd} & set(names):
            raise ValueError(f"a crowd object is already in the scene: {[c.name for c in self.crowd]} / {names}")
        if not self.distractors and self.extra[0] < 1:
            raise ValueError("a varied scene needs at least one distractor")
        if self.extra[1] > len(self.pool):
            raise ValueError(f"extra {self.extra} needs a pool of at least {self.extra[1]}")

    @property
    def task_objects(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.placements)


def min_distance(a: str, b: str) -> float:
    """Closest two objects' centres may be (their footprints plus the clearance)."""
    return FOOTPRINT[a] + FOOTPRINT[b] + CLEARANCE


def spacing_ok(layout: Layout) -> bool:
    items = list(layout.items())
    for i, (a, pa) in enumerate(items):
        for b, pb in items[i + 1:]:
            if math.dist(pa[:2], pb[:2]) < min_distance(a, b) - 1e-9:
                return False
    return True


def varied_layout(spec: SceneSpec, rng: np.random.Generator, tries: int = 200, restarts: int = 100,
                  spread: float = 1.0, crowded: bool = False) -> Layout:
    """Draw one varied scene; deterministic given the generator's state. spread scales the task
    objects' regions about their centres (1.5: places no demonstration showed, an evaluation of
    generalisation; the same draws as 1.0 otherwise). crowded: add spec.crowd in its regions
    (varied scenes' draws are unchanged by the crowd)."""
    crowd = spec.crowd if crowded else ()
    crowd_names = {c.name for c in crowd}
    pool = tuple(name for name in spec.pool if name not in crowd_names)
    for _ in range(restarts):
        k = int(rng.integers(min(spec.extra[0], len(pool)), min(spec.extra[1], len(pool)) + 1))
        picked = [pool[i] for i in rng.permutation(len(pool))[:k]]
        todo = [(p.name, p.region.scaled(spread, TABLE), p.yaw) for p in (*spec.placements, *crowd)]
        todo += [(name, TABLE, _yaw_range(name)) for name in (*spec.distractors, *picked)]
        layout: Layout = {}
        for name, region, yaw_range in todo:
            for _ in range(tries):
                x, y = region.sample(rng)
                if all(math.dist((x, y), p[:2]) >= min_distance(name, other) for other, p in layout.items()):
                    yaw = float(rng.uniform(*yaw_range)) if yaw_range[1] > yaw_range[0] else 0.0
                    layout[name] = (x, y, yaw)
                    break
            else:
                break                       # this draw painted itself into a corner: start over
        else:
            return layout
    raise RuntimeError(f"could not lay out {spec.task_objects} with spacing; the regions are too small")


def _yaw_range(name: str) -> tuple[float, float]:
    if name in ("plate", "cup"):
        return NO_YAW
    return BAR_YAW if name == "yellow_bar" else BLOCK_YAW
