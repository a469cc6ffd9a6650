"""Inverse kinematics for one 6-DoF arm of the sim: damped least squares on MuJoCo's
site Jacobian, computed on a scratch MjData so the simulation itself is never touched."""
from __future__ import annotations

import mujoco
import numpy as np

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")


def top_down(yaw: float) -> np.ndarray:
    """Gripper frame pointing straight down, fingers closing along (cos yaw, sin yaw, 0).

    The gripper's x axis is the approach direction and its y axis the finger axis.
    """
    x = np.array([0.0, 0.0, -1.0])
    y = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    return np.column_stack([x, y, np.cross(x, y)])


class ArmIK:
    def __init__(self, model: mujoco.MjModel, side: str):
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = model.site(f"{side}/tcp").id
        joints = [model.joint(f"{side}/{j}") for j in ARM_JOINTS]
        self.qpos_adr = np.array([j.qposadr[0] for j in joints])
        self.dof_adr = np.array([j.dofadr[0] for j in joints])
        self.lower = np.array([j.range[0] for j in joints])
        self.upper = np.array([j.range[1] for j in joints])
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position, 3x3 rotation) of the tool point for arm joints q."""
        self.data.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(self, q_init: np.ndarray, pos: np.ndarray, rot: np.ndarray,
              iterations: int = 60, damping: float = 1e-3, tol: float = 1e-5) -> np.ndarray:
        """Joints reaching (pos, rot), starting from q_init (warm start keeps solutions continuous)."""
        q = np.array(q_init, dtype=np.float64)
        for _ in range(iterations):
            cur_pos, cur_rot = self.forward(q)
            err_pos = pos - cur_pos
            err_rot = 0.5 * sum(np.cross(cur_rot[:, i], rot[:, i]) for i in range(3))
            err = np.concatenate([err_pos, 0.3 * err_rot])
            if err @ err < tol * tol:
                break
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            jac = np.vstack([self._jacp[:, self.dof_adr], 0.3 * self._jacr[:, self.dof_adr]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(6), err)
            q = np.clip(q + dq, self.lower, self.upper)
        return q
