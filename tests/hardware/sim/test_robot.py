"""SimRobot: real physics and render threads behind the Camera / Arm interfaces."""
import time

import numpy as np
import pytest

from hardware.arm import ArmNotConnectedError
from hardware.camera import CameraConfig, CameraDisconnectedError, StaleFrameError
from hardware.sim.env import ALOHA_SPEC, CAMERA_NAMES, SimConfig
from hardware.sim.robot import SimCamera, SimRobot


@pytest.fixture(scope="module")
def robot():
    r = SimRobot(SimConfig(task="put_red_on_plate", seed=0, width=160, height=120), camera_fps=20)
    r.start()
    yield r
    r.close()


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_cameras_deliver_fresh_frames_with_increasing_seq(robot):
    assert set(robot.cameras) == set(CAMERA_NAMES)
    for name, camera in robot.cameras.items():
        assert camera.is_connected and camera.resolution == (160, 120)
        first = camera.read_latest()
        assert first.rgb.shape == (120, 160, 3) and first.rgb.dtype == np.uint8
        assert wait_until(lambda c=camera, f=first: c.latest().seq > f.seq), name
        second = camera.read_latest()
        assert second.seq > first.seq and second.timestamp >= first.timestamp
        assert second.depth is None


def test_stale_frame_is_reported(robot):
    camera = robot.cameras["head"]
    with pytest.raises(StaleFrameError, match="head.*stalled"):
        camera.read_latest(max_age_s=0.0)


def test_arm_follows_commands(robot):
    robot.reset(seed=0)
    arm = robot.arm
    assert arm.is_connected and arm.spec is ALOHA_SPEC
    state = arm.read_state()
    assert np.allclose(state.position, ALOHA_SPEC.home, atol=0.02)
    target = np.asarray(ALOHA_SPEC.home, dtype=np.float32).copy()
    target[7] += 0.3     # right waist
    target[6] = 0.0      # close the left gripper
    arm.command(target)
    assert wait_until(lambda: abs(arm.read_state().position[7] - target[7]) < 0.02)
    assert wait_until(lambda: arm.read_state().position[6] < 0.05)
    assert np.allclose(arm.read_state().target, target)
    with pytest.raises(ValueError, match="14 finite floats"):
        arm.command(np.zeros(3))


def test_frames_show_the_arm_moving(robot):
    robot.reset(seed=0)
    camera = robot.cameras["head"]
    assert wait_until(lambda: np.allclose(robot.arm.read_state().position, ALOHA_SPEC.home, atol=0.02))
    time.sleep(0.3)
    before = camera.read_latest().rgb.copy()
    target = np.asarray(ALOHA_SPEC.home, dtype=np.float32).copy()
    target[0] += 0.5
    robot.arm.command(target)
    assert wait_until(lambda: abs(robot.arm.read_state().position[0] - target[0]) < 0.03)
    time.sleep(0.3)
    after = camera.read_latest().rgb
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 0.5


def test_reset_is_thread_safe_and_restores_home(robot):
    for seed in range(3):
        robot.reset(task="stack_green_on_purple", seed=seed)
    assert robot.task.name == "stack_green_on_purple"
    assert robot.instruction == "stack the green block on the purple block"
    assert np.allclose(robot.arm.read_state().position, ALOHA_SPEC.home, atol=0.02)
    assert not robot.success()


def test_reset_returns_once_every_camera_shows_the_new_scene(robot):
    # A policy started right after a reset must not see the last episode's picture with the new state.
    robot.reset(seed=0)
    target = np.asarray(ALOHA_SPEC.home, dtype=np.float32).copy()
    target[0] += 0.5
    target[7] -= 0.5
    robot.arm.command(target)
    assert wait_until(lambda: abs(robot.arm.read_state().position[0] - target[0]) < 0.03)
    time.sleep(0.3)
    moved = {name: cam.read_latest().rgb.copy() for name, cam in robot.cameras.items()}
    before = time.monotonic()
    robot.reset(seed=1)
    at_reset = {name: cam.latest() for name, cam in robot.cameras.items()}
    time.sleep(0.3)                            # the arm holds home: later frames show the same scene
    settled = {name: cam.read_latest().rgb for name, cam in robot.cameras.items()}
    for name in robot.cameras:
        assert at_reset[name].timestamp >= before, name
        changed = np.abs(moved[name].astype(int) - settled[name].astype(int)).mean()
        stale = np.abs(at_reset[name].rgb.astype(int) - settled[name].astype(int)).mean()
        assert changed > 0.5 and stale < 0.1 * changed, (name, changed, stale)


def test_unknown_or_depth_camera_is_refused(robot):
    with pytest.raises(ValueError, match="no camera 'top'"):
        SimCamera(CameraConfig(name="top"), robot)
    with pytest.raises(ValueError, match="RGB only"):
        SimCamera(CameraConfig(name="head", use_depth=True), robot)


def test_close_disconnects_everything():
    r = SimRobot(SimConfig(width=160, height=120), camera_fps=10)
    with pytest.raises(ArmNotConnectedError, match="start"):
        r.arm.connect()
    r.start()
    camera = r.cameras["left_wrist"]
    camera.read_latest()
    r.close()
    r.close()   # twice is fine
    with pytest.raises(CameraDisconnectedError, match="left_wrist"):
        camera.read_latest()
    with pytest.raises(ArmNotConnectedError):
        r.arm.read_state()
