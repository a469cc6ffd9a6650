"""The aloha-agilex robot layout: the one source for the constants that the sim, the Piper
adapter, the testing runner, the episode tools and the model presets share.

Two 6-DoF arms with parallel grippers (RoboTwin 2.0's dual-arm embodiment). Joint vectors and
actions are 14-d: [left 6 joints, left gripper, right 6 joints, right gripper], grippers
normalised 0 (closed) .. 1 (open). Three RGB cameras: head, left_wrist, right_wrist. Plain
constants, no imports: policy/ reads it without pulling in any hardware adapter.
"""
from __future__ import annotations

SIDES = ("left", "right")
CAMERA_NAMES = ("head", "left_wrist", "right_wrist")
ARM_DOF = 6
ACTION_DIM = 2 * (ARM_DOF + 1)                            # 14
GRIPPER_INDICES = tuple(i * (ARM_DOF + 1) + ARM_DOF for i in range(len(SIDES)))   # (6, 13)


def arm_joints(side: str) -> slice:
    """Where one arm's 6 joints (gripper excluded) lie in the 14-d state and action."""
    start = SIDES.index(side) * (ARM_DOF + 1)
    return slice(start, start + ARM_DOF)


RIGHT_ARM_JOINTS = arm_joints("right")


def both_arms(arm: tuple[float, ...], gripper: float) -> tuple[float, ...]:
    """One arm's per-joint values and a gripper value, laid out for both arms (14 values)."""
    return (*arm, gripper, *arm, gripper)


def joint_names(arm_joints: tuple[str, ...]) -> tuple[str, ...]:
    """"left_<joint>", ..., "left_gripper", "right_<joint>", ..., "right_gripper"."""
    return tuple(f"{s}_{j}" for s in SIDES for j in (*arm_joints, "gripper"))
