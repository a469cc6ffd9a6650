"""ArmIK: reaches top-down poses across the workspace without touching the simulation."""
import numpy as np
import pytest

from hardware.sim.env import ALOHA_SPEC, SimConfig, SimEnv
from hardware.sim.ik import ArmIK, top_down


@pytest.fixture(scope="module")
def env():
    with SimEnv(SimConfig(width=160, height=120)) as e:
        yield e


@pytest.mark.parametrize("side,index", [("left", 0), ("right", 7)])
def test_reaches_top_down_poses(env, side, index):
    ik = ArmIK(env.model, side)
    q = np.asarray(ALOHA_SPEC.home[index:index + 6], dtype=np.float64)
    qpos_before = env.data.qpos.copy()
    sign = -1 if side == "left" else 1
    for x, y, z, yaw in [(0.25, 0.3, 0.05, np.pi), (0.0, 0.45, 0.12, np.pi), (0.15, 0.2, 0.2, np.pi / 2)]:
        target_pos = np.array([sign * x, y, z])
        q = ik.solve(q, target_pos, top_down(yaw))
        pos, rot = ik.forward(q)
        assert np.linalg.norm(pos - target_pos) < 1e-3
        assert np.abs(rot - top_down(yaw)).max() < 1e-2
        assert np.all(q >= ik.lower) and np.all(q <= ik.upper)
    assert np.array_equal(env.data.qpos, qpos_before), "IK must not touch the simulation"


def test_top_down_frame_is_a_rotation():
    for yaw in (0.0, 1.0, np.pi):
        rot = top_down(yaw)
        assert np.allclose(rot.T @ rot, np.eye(3)) and np.isclose(np.linalg.det(rot), 1.0)
        assert np.allclose(rot[:, 0], [0, 0, -1])
