"""WebXR teleop without a browser: message checks, the grip clutch, the workspace clamp, latest-wins,
and the pose -> joint target mapping through the sim's real MuJoCo IK."""
from __future__ import annotations

import math

import numpy as np
import pytest

from app.xr_teleop import Clutch, HandPose, XRPoses, XRTeleop, XRTeleopConfig, parse_poses, quat_to_matrix
from hardware.sim.env import ALOHA_SPEC

IDENTITY = [0.0, 0.0, 0.0, 1.0]
EE_POS, EE_ROT = np.array([0.3, 0.2, 0.2]), np.eye(3)


def hand(pos=(0.2, 1.0, -0.3), quat=IDENTITY, grip=1.0, trigger=0.0) -> dict:
    return {"position": list(pos), "orientation": list(quat), "grip": grip, "trigger": trigger}


def pose(pos=(0.2, 1.0, -0.3), rot=None, grip=1.0, trigger=0.0) -> HandPose:
    return HandPose(np.asarray(pos, float), np.eye(3) if rot is None else rot, grip, trigger)


def yaw_quat(angle: float) -> list[float]:
    """Rotation about XR +y (up)."""
    return [0.0, math.sin(angle / 2), 0.0, math.cos(angle / 2)]


# -- messages -------------------------------------------------------------------------------------
def test_a_well_formed_message_parses():
    poses = parse_poses({"seq": 3, "hands": {"right": hand(trigger=0.25), "left": None}})
    assert poses.seq == 3 and set(poses.hands) == {"right"}
    right = poses.hands["right"]
    assert right.grip == 1.0 and right.trigger == 0.25
    np.testing.assert_allclose(right.rotation, np.eye(3))
    assert parse_poses('{"seq": 0, "hands": {}}').hands == {}


@pytest.mark.parametrize("message, problem", [
    ("{not json", "not JSON"),
    ([1, 2], "must be an object"),
    ({"hands": {}}, "integer seq"),
    ({"seq": True, "hands": {}}, "integer seq"),
    ({"seq": 1}, "needs hands"),
    ({"seq": 1, "hands": {"middle": hand()}}, "use \"left\" or \"right\""),
    ({"seq": 1, "hands": {"right": hand(pos=(0, 1))}}, "list of 3 numbers"),
    ({"seq": 1, "hands": {"right": hand(pos=(0, float("nan"), 0))}}, "NaN"),
    ({"seq": 1, "hands": {"right": hand(pos=(0, "1", 0))}}, "numbers only"),
    ({"seq": 1, "hands": {"right": hand(quat=(0, 0, 0, 2))}}, "unit quaternion"),
    ({"seq": 1, "hands": {"right": hand(grip=1.7)}}, "0..1"),
    ({"seq": 1, "hands": {"right": hand(trigger=None)}}, "trigger must be a number"),
    ({"seq": 1, "hands": {"right": hand(pos=(100, 0, 0))}}, "tracking glitch"),
])
def test_malformed_messages_name_the_problem(message, problem):
    with pytest.raises(ValueError, match=problem):
        parse_poses(message)


def test_quaternions_follow_webxr_order():
    rot = quat_to_matrix(yaw_quat(math.pi / 2))        # +90 deg about y: x -> -z
    np.testing.assert_allclose(rot @ [1, 0, 0], [0, 0, -1], atol=1e-12)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="scale"):
        XRTeleopConfig(scale=0)
    with pytest.raises(ValueError, match="rotation"):
        XRTeleopConfig(xr_to_robot=((1, 0, 0), (0, 1, 0), (0, 0, -1)))
    with pytest.raises(ValueError, match="workspace_min"):
        XRTeleopConfig(workspace_min=(0, 0, 1), workspace_max=(1, 1, 0.5))


# -- the clutch ------------------------------------------------------------------------------------
def test_no_grip_means_no_target():
    clutch = Clutch(XRTeleopConfig())
    assert clutch.update(pose(grip=0.2), lambda: (EE_POS, EE_ROT)) is None
    assert clutch.update(None, lambda: (EE_POS, EE_ROT)) is None and not clutch.engaged


def test_grip_moves_the_target_by_the_scaled_controller_motion_in_the_robot_frame():
    clutch = Clutch(XRTeleopConfig(scale=0.5))
    pos, rot = clutch.update(pose(), lambda: (EE_POS, EE_ROT))
    np.testing.assert_allclose(pos, EE_POS)             # pressing grip never moves the arm
    # 10 cm forward (XR -z) and 4 cm right (XR +x) -> robot +y 5 cm, +x 2 cm at scale 0.5
    pos, rot = clutch.update(pose((0.24, 1.0, -0.4)), lambda: pytest.fail("EE read again while held"))
    np.testing.assert_allclose(pos, EE_POS + [0.02, 0.05, 0.0], atol=1e-12)
    np.testing.assert_allclose(rot, EE_ROT)
    pos, _ = clutch.update(pose((0.2, 1.1, -0.3)), lambda: (EE_POS, EE_ROT))     # up 10 cm -> robot +z 5 cm
    np.testing.assert_allclose(pos, EE_POS + [0, 0, 0.05], atol=1e-12)


def test_releasing_grip_re_centres():
    clutch = Clutch(XRTeleopConfig())
    clutch.update(pose(), lambda: (EE_POS, EE_ROT))
    assert clutch.update(pose((0.2, 1.0, -0.5), grip=0.0), lambda: (EE_POS, EE_ROT)) is None
    moved = EE_POS + [0.0, 0.1, 0.0]                    # where the arm ended up
    pos, _ = clutch.update(pose((0.2, 1.0, -0.5)), lambda: (moved, EE_ROT))   # grip again, hand elsewhere
    np.testing.assert_allclose(pos, moved)              # no jump: relative to the new press


def test_the_target_is_clamped_to_the_workspace():
    config = XRTeleopConfig(workspace_min=(-0.5, 0.0, 0.05), workspace_max=(0.5, 0.5, 0.4))
    clutch = Clutch(config)
    clutch.update(pose(), lambda: (EE_POS, EE_ROT))
    pos, _ = clutch.update(pose((3.0, -2.0, -5.0)), lambda: (EE_POS, EE_ROT))    # far right, down, forward
    np.testing.assert_allclose(pos, [0.5, 0.5, 0.05])


def test_orientation_follows_the_controller_turn():
    clutch = Clutch(XRTeleopConfig())
    clutch.update(pose(), lambda: (EE_POS, EE_ROT))
    _, rot = clutch.update(pose(rot=quat_to_matrix(yaw_quat(math.pi / 2))), lambda: (EE_POS, EE_ROT))
    # a turn to the left about XR up is a turn about robot +z: robot x -> robot y
    np.testing.assert_allclose(rot @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    fixed = Clutch(XRTeleopConfig(follow_orientation=False))
    fixed.update(pose(), lambda: (EE_POS, EE_ROT))
    _, rot = fixed.update(pose(rot=quat_to_matrix(yaw_quat(1.0))), lambda: (EE_POS, EE_ROT))
    np.testing.assert_allclose(rot, EE_ROT)


# -- XRTeleop on the sim's MuJoCo model -------------------------------------------------------------
@pytest.fixture(scope="module")
def xr():
    return XRTeleop.for_robot(ALOHA_SPEC)


def frame(seq, **hands) -> XRPoses:
    return XRPoses(seq, hands)


def test_other_robots_are_refused_with_the_reason():
    from hardware.arm import RobotSpec
    spec = RobotSpec("piper", tuple(f"j{i}" for i in range(7)), (-1,) * 7, (1,) * 7, (0,) * 7, gripper_indices=(6,))
    off = XRTeleop.for_robot(spec)
    assert not off.available and "no kinematic model for 'piper'" in off.why_not


def test_a_gripped_controller_moves_its_arm_by_the_scaled_amount(xr):
    xr.reset()
    home = np.asarray(ALOHA_SPEC.home, float)
    ik = xr.kinematics["right"]
    start, start_rot = ik.forward(home[7:13])
    assert xr.accept("tab", frame(1, right=pose()), now=0.0)
    step = xr.step(frame(1, right=pose()), home)
    assert step.engaged == ["right"]
    np.testing.assert_allclose(step.target[:7], home[:7])           # the left arm is not touched
    moved = frame(2, right=pose((0.23, 1.02, -0.35), trigger=1.0))   # 3 cm right, 2 cm up, 5 cm forward
    assert xr.accept("tab", moved, now=0.01)
    step = xr.step(moved, home)
    reached, rot = ik.forward(step.target[7:13])
    np.testing.assert_allclose(reached - start, [0.03, 0.05, 0.02], atol=1e-3)
    np.testing.assert_allclose(rot, start_rot, atol=1e-2)            # orientation held
    assert step.target[13] == 0.0 and step.notes == []                # trigger pulled = gripper closed
    np.testing.assert_allclose(step.target[:7], home[:7])


def test_releasing_one_arm_freezes_its_target_and_none_held_sends_nothing(xr):
    xr.reset()
    home = np.asarray(ALOHA_SPEC.home, float)
    t = 10.0
    for seq, (r, l) in enumerate([((0.2, 1.0, -0.3), (-0.2, 1.0, -0.3)), ((0.2, 1.0, -0.35), (-0.2, 1.0, -0.3))]):
        poses = frame(100 + seq, right=pose(r), left=pose(l))
        assert xr.accept("tab", poses, now=t + seq * 0.01)
        both = xr.step(poses, home)
    assert both.engaged == ["left", "right"] or sorted(both.engaged) == ["left", "right"]
    frozen_right = both.target[7:14].copy()
    poses = frame(102, right=pose((0.2, 1.0, -0.6), grip=0.0), left=pose((-0.2, 1.05, -0.3)))
    assert xr.accept("tab", poses, now=t + 0.03)
    step = xr.step(poses, home)
    assert step.engaged == ["left"]
    np.testing.assert_allclose(step.target[7:14], frozen_right)       # released arm: frozen, not measured
    poses = frame(103, right=pose(grip=0.0), left=pose(grip=0.0))
    assert xr.accept("tab", poses, now=t + 0.04)
    assert xr.step(poses, home).target is None


def test_latest_wins_and_a_gap_re_anchors(xr):
    xr.reset()
    home = np.asarray(ALOHA_SPEC.home, float)
    assert xr.accept("a", frame(5, right=pose()), now=100.0)
    xr.step(frame(5, right=pose()), home)
    assert not xr.accept("a", frame(5, right=pose()), now=100.01)      # not newer: dropped
    assert not xr.accept("a", frame(4, right=pose()), now=100.01)
    assert xr.accept("b", frame(0, right=pose()), now=100.02)          # another tab starts over
    xr.step(frame(0, right=pose()), home)
    assert xr.accept("b", frame(1, right=pose((0.2, 1.0, -0.5))), now=104.0)   # a 4 s stall
    step = xr.step(frame(1, right=pose((0.2, 1.0, -0.5))), home)
    ik = xr.kinematics["right"]
    np.testing.assert_allclose(ik.forward(step.target[7:13])[0], ik.forward(home[7:13])[0], atol=1e-3)


# -- through the console's teleop gate to the real controller (no browser) ---------------------------
@pytest.fixture(scope="module")
def console(sim_robot):
    from app.console import Console
    from app.control.controller import Controller, ControllerConfig
    from app.live_view import LiveFeeds
    from hardware.safety import SafeArm
    controller = Controller(SafeArm(sim_robot.arm), dict(sim_robot.cameras), None,
                            ControllerConfig(control_hz=sim_robot.arm.spec.control_hz))
    controller.start()
    yield Console(controller, LiveFeeds(dict(sim_robot.cameras)))
    controller.close()


def message(seq, grip=1.0, z=-0.3) -> dict:
    return {"seq": seq, "hands": {"right": hand(pos=(0.2, 1.0, z), grip=grip)}}


def test_the_console_gates_xr_like_the_jog_keys(console):
    mode = lambda: console.controller.status().mode.value      # noqa: E731
    assert console.xr_command("tab", message(1)) == {"error": None, "engaged": ["right"], "notes": []}
    assert mode() == "teleop"                                    # a fresh grip switches an idle arm to teleop
    console.controller.pause()
    reply = console.xr_command("tab", message(2))                # grip held through PAUSE: no resume
    assert "release the grip and squeeze again" in reply["error"] and mode() == "idle"
    assert console.xr_command("tab", message(3, grip=0.0))["error"] is None
    assert console.xr_command("tab", message(4))["engaged"] == ["right"] and mode() == "teleop"
    console.controller.stop()
    console.xr_command("tab", message(5, grip=0.0))
    assert "STOPPED" in console.xr_command("tab", message(6))["error"] and mode() == "idle"
    assert console.xr_command("tab", message(6))["stale"] is True   # not newer than one taken: dropped
    assert "not JSON" in console.xr_command("tab", "{")["error"]
    reply = console.xr_command("other tab", message(7))          # another tab does not hold control
    assert reply["error"] and "engaged" not in reply
