"""Varied scenes: objects over real table regions with a minimum spacing and random yaw, a
distractor no instruction names in every scene, every grasp and place pose reachable by the arm
that does the task; classic scenes stay the default."""
import itertools
import math

import numpy as np
import pytest

from hardware.sim import scenes as sc
from hardware.sim.env import ALOHA_SPEC, SimConfig, SimEnv
from hardware.sim.expert import DOWN_X, DOWN_Y, GRASP_BELOW_TOP, HOVER_Z, wrap_half, wrap_quarter
from hardware.sim.ik import ArmIK, top_down
from hardware.sim.instructions import named_objects
from hardware.sim.tasks import EVALUATION_ONLY_TASKS, TASKS, TRAINING_TASKS, object_half_height, object_pos, \
    object_yaw

SEEDS = range(25)
# (arm, object picked, destination) of each pick-and-place expert
PICKS = {"put_red_on_plate": ("right", "red_block", "plate"), "put_blue_on_plate": ("right", "blue_block", "plate"),
         "stack_green_on_purple": ("left", "green_block", "purple_block"),
         "put_green_in_cup": ("left", "green_block", "cup"), "stack_red_on_purple": ("right", "red_block", "purple_block"),
         "stack_orange_on_purple": ("right", "orange_block", "purple_block"),
         "put_orange_on_plate": ("right", "orange_block", "plate"),
         "put_blue_on_purple": ("right", "blue_block", "purple_block")}
BAR_OFFSET = 0.035     # the handover grasps the bar this far from its centre


@pytest.fixture(scope="module")
def env():
    with SimEnv(SimConfig(width=64, height=48, scenes="varied")) as e:
        yield e


@pytest.fixture(scope="module")
def iks(env):
    return {s: ArmIK(env.model, s) for s in ("left", "right")}


def reaches(ik: ArmIK, side: str, pos, yaw: float) -> bool:
    """IK from the home pose along a straight path (as the expert moves) ends on the pose."""
    index = 0 if side == "left" else 7
    q = np.asarray(ALOHA_SPEC.home[index:index + 6], dtype=np.float64)
    start = ik.forward(q)[0]
    for s in np.linspace(0.0, 1.0, 12)[1:]:
        q = ik.solve(q, start + s * (np.asarray(pos) - start), top_down(DOWN_X + s * (yaw - DOWN_X)))
    reached, rot = ik.forward(q)
    return bool(np.linalg.norm(reached - pos) < 2e-3 and np.abs(rot - top_down(yaw)).max() < 2e-2)


def test_regions_are_real_and_tasks_split_train_from_evaluation():
    for region in (sc.RIGHT_BLOCKS, sc.LEFT_BLOCKS):
        assert region.size[0] >= 0.20 and region.size[1] >= 0.12
    for region in (sc.RIGHT_PLATE, sc.LEFT_CUP, sc.BAR):
        assert region.size[0] >= 0.20 - 1e-9 and region.size[1] >= 0.12 - 1e-9
    assert all(t.varied is not None for t in TASKS.values())
    assert "put_blue_on_purple" in EVALUATION_ONLY_TASKS and "put_blue_on_purple" not in TRAINING_TASKS
    assert not TASKS["put_blue_on_purple"].training and len(TASKS) >= 6
    assert set(TRAINING_TASKS) | set(EVALUATION_ONLY_TASKS) == set(TASKS)


def test_each_task_names_what_it_moves_and_where_it_goes():
    # what the evaluation tracks (ObjectLift): the expert's pick, not the first object the layout draws
    for name, task in TASKS.items():
        if name in PICKS:
            assert (task.moved, task.destination) == PICKS[name][1:], name
        else:
            assert (task.moved, task.destination) == ("yellow_bar", None), name
        assert task.moved in task.objects and (task.destination is None or task.destination in task.objects)
        assert task.moved.split("_")[0] in task.instruction, name


def test_footprints_match_the_scene(env):
    m = env.model
    for name, radius in sc.FOOTPRINT.items():
        body = m.body(name)
        half_diag = max(math.hypot(*m.geom_size[g][:2]) if m.geom_type[g] == 6 else m.geom_size[g][0]
                        for g in range(body.geomadr[0], body.geomadr[0] + body.geomnum[0])
                        if m.geom_type[g] in (5, 6) and np.allclose(m.geom_pos[g][:2], 0))
        assert radius >= half_diag - 1e-3, name


@pytest.mark.parametrize("task", [name for name, t in TASKS.items() if t.varied.crowd])
def test_crowded_scenes_add_unnamed_objects_beside_the_task_objects_and_leave_varied_scenes_alone(task):
    import dataclasses
    spec = TASKS[task].varied
    bare = dataclasses.replace(spec, crowd=())
    for seed in SEEDS:
        crowded = TASKS[task].scene_layout(np.random.default_rng(seed), scenes="crowded")
        assert sc.spacing_ok(crowded), crowded
        for p in (*spec.placements, *spec.crowd):
            assert p.region.contains(*crowded[p.name][:2]), (p.name, crowded[p.name])
        assert not {c.name for c in spec.crowd} & named_objects(task), task
        assert set(crowded) - named_objects(task) - {c.name for c in spec.crowd}, f"{task}: no distractor"
        # the crowd changes nothing in a varied scene: the same draws as a spec without one
        varied = TASKS[task].scene_layout(np.random.default_rng(seed), scenes="varied")
        assert varied == sc.varied_layout(bare, np.random.default_rng(seed))


@pytest.mark.parametrize("task", list(TASKS))
def test_varied_layouts_spread_keep_spacing_and_show_a_distractor(task):
    spec = TASKS[task].varied
    layouts = [TASKS[task].scene_layout(np.random.default_rng(s), scenes="varied") for s in SEEDS]
    for layout in layouts:
        assert sc.spacing_ok(layout), layout
        for p in spec.placements:
            assert p.region.contains(*layout[p.name][:2]), (p.name, layout[p.name])
        assert set(layout) - named_objects(task), f"{task}: no distractor in {sorted(layout)}"
        assert all(sc.TABLE.contains(x, y) for x, y, _ in layout.values())
    moved = spec.placements[0].name
    xy = np.array([layout[moved][:2] for layout in layouts])
    assert np.ptp(xy[:, 0]) > 0.12 and np.ptp(xy[:, 1]) > 0.07, f"{moved} barely moves: {np.ptp(xy, axis=0)}"
    if moved != "yellow_bar":
        yaws = [layout[moved][2] for layout in layouts]
        assert np.ptp(yaws) > 1.0, "blocks turn"
    assert len({tuple(sorted(layout)) for layout in layouts}) > 1, "the distractors vary"
    assert layouts[0] == TASKS[task].scene_layout(np.random.default_rng(0), scenes="varied")


@pytest.mark.parametrize("task", list(TASKS))
def test_varied_scenes_are_reachable_by_the_arm_that_does_the_task(env, iks, task):
    for seed in range(6):
        env.reset(task=task, seed=seed)
        m, d = env.model, env.data
        for name, pose in env.layout.items():      # placed where the layout says, resting, turned
            p = object_pos(m, d, name)
            assert np.allclose(p[:2], pose[:2], atol=5e-3) and abs(p[2] - object_half_height(m, name)) < 3e-3
            if name.endswith("_block"):
                assert abs(wrap_quarter(object_yaw(m, d, name) - pose[2])) < 0.02
        if task == "handover_bar":
            yaw = wrap_half(object_yaw(m, d, "yellow_bar"))
            c = object_pos(m, d, "yellow_bar")
            grip = c[:2] - BAR_OFFSET * np.array([np.cos(yaw), np.sin(yaw)])
            for z in (HOVER_Z, c[2] + object_half_height(m, "yellow_bar") - 0.010):
                assert reaches(iks["left"], "left", [*grip, z], yaw + np.pi / 2), (seed, z)
            continue
        arm, obj, dest = PICKS[task]
        o, t = object_pos(m, d, obj), object_pos(m, d, dest)
        yaw = DOWN_X + wrap_quarter(object_yaw(m, d, obj) - DOWN_X)
        top = o[2] + object_half_height(m, obj)
        for pos in ([*o[:2], HOVER_Z], [*o[:2], top - GRASP_BELOW_TOP]):
            assert reaches(iks[arm], arm, pos, yaw), (seed, "grasp", pos)
        place_z = t[2] + object_half_height(m, dest) + 2 * object_half_height(m, obj) + 0.01
        for pos in ([*t[:2], HOVER_Z + 0.02], [*t[:2], place_z]):
            assert reaches(iks[arm], arm, pos, yaw), (seed, "place", pos)


@pytest.mark.parametrize("region,arm,zs", [
    (sc.RIGHT_BLOCKS, "right", (0.022, HOVER_Z)), (sc.LEFT_BLOCKS, "left", (0.022, HOVER_Z)),
    (sc.RIGHT_PLATE, "right", (0.06, HOVER_Z + 0.02)), (sc.LEFT_CUP, "left", (0.10, HOVER_Z + 0.02)),
])
def test_every_corner_of_a_region_is_reachable_at_every_grasp_yaw(iks, region, arm, zs):
    for x, y, z, dyaw in itertools.product(region.x, region.y, zs, (-np.pi / 4, 0.0, np.pi / 4)):
        assert reaches(iks[arm], arm, [x, y, z], DOWN_X + dyaw), (x, y, z, dyaw)


def test_every_corner_of_the_bar_region_is_reachable(iks):
    for x, y, yaw in itertools.product(sc.BAR.x, sc.BAR.y, sc.BAR_YAW):
        grip = np.array([x, y]) - BAR_OFFSET * np.array([np.cos(yaw), np.sin(yaw)])
        for z in (0.02, HOVER_Z):
            assert reaches(iks["left"], "left", [*grip, z], DOWN_Y + yaw), (x, y, yaw, z)


def test_varied_reset_is_deterministic_and_parks_what_it_does_not_use(env):
    env.reset(task="stack_green_on_purple", seed=9)
    first, layout = env.data.qpos.copy(), dict(env.layout)
    env.reset(task="handover_bar", seed=2)
    env.reset(task="stack_green_on_purple", seed=9)
    assert np.array_equal(env.data.qpos, first) and env.layout == layout
    for name in sc.FOOTPRINT:
        on_table = object_pos(env.model, env.data, name)[2] > 0
        assert on_table == (name in layout), name


def test_classic_stays_the_default_and_unknown_scenes_are_refused():
    assert SimConfig().scenes == "classic"
    with pytest.raises(ValueError, match="unknown scenes 'wild'.*classic, varied"):
        SimEnv(SimConfig(scenes="wild", width=64, height=48))
    classic = TASKS["put_red_on_plate"].scene_layout(np.random.default_rng(3))
    assert set(classic) == {"red_block", "blue_block", "plate"}, "classic scenes get no new objects"


def test_spread_draws_beyond_the_demonstrated_regions_but_stays_on_the_table():
    """object_jitter 1.5 on varied scenes (the monitors' "layout" condition): task objects land
    outside the regions demonstrations used, never off the table, spacing kept; 1.0 is unchanged."""
    spec = TASKS["put_red_on_plate"].varied
    regions = {p.name: p.region for p in spec.placements}
    same = [sc.varied_layout(spec, np.random.default_rng(s)) for s in SEEDS]
    assert same == [TASKS["put_red_on_plate"].scene_layout(np.random.default_rng(s), 1.0, "varied") for s in SEEDS]
    outside = 0
    for s in range(100):
        layout = TASKS["put_red_on_plate"].scene_layout(np.random.default_rng(s), 1.5, "varied")
        assert sc.spacing_ok(layout)
        for name, region in regions.items():
            x, y, _ = layout[name]
            assert sc.TABLE.contains(x, y)
            outside += not region.contains(x, y)
    assert outside >= 30, outside
    grown = sc.RIGHT_BLOCKS.scaled(1.5, sc.TABLE)
    assert grown.size[0] == pytest.approx(1.5 * sc.RIGHT_BLOCKS.size[0]) and sc.RIGHT_BLOCKS.scaled(1.0, sc.TABLE) \
        is sc.RIGHT_BLOCKS
