"""hardware.safety.SafeArm driving the real SimArm (physics thread running)."""
import time

import numpy as np
import pytest

from hardware.safety import SafeArm, SafetyConfig, UnsafeCommandError
from hardware.sim.env import ALOHA_SPEC, SimConfig
from hardware.sim.robot import SimRobot


@pytest.fixture(scope="module")
def robot():
    r = SimRobot(SimConfig(width=160, height=120), camera_fps=5)
    r.start()
    yield r
    r.close()


@pytest.fixture
def safe(robot):
    robot.reset(seed=0)
    return SafeArm(robot.arm, SafetyConfig(limit_margin=0.05, watchdog_s=0.2))


def home():
    return np.asarray(ALOHA_SPEC.home, dtype=np.float64).copy()


def test_nan_is_refused_and_the_arm_holds(robot, safe):
    sent = safe.command(home())
    bad = home()
    bad[2] = np.nan
    with pytest.raises(UnsafeCommandError, match="NaN/inf for left_elbow"):
        safe.command(bad)
    assert safe.holding and safe.events.rejected == 1
    measured = robot.arm.read_state().position
    joints = [i for i in range(ALOHA_SPEC.action_dim) if i not in ALOHA_SPEC.gripper_indices]
    grippers = list(ALOHA_SPEC.gripper_indices)
    assert np.allclose(robot.target()[joints], measured[joints], atol=1e-6)   # joints hold where they are
    assert np.allclose(robot.target()[grippers], sent[grippers], atol=1e-6)   # grippers keep their command
    time.sleep(0.3)
    assert np.allclose(robot.arm.read_state().position[joints], measured[joints], atol=0.01)


def test_targets_are_clipped_to_limits_with_margin(safe):
    target = home()
    target[6] = 5.0           # gripper far past open
    sent = safe.command(target)
    assert sent[6] == pytest.approx(ALOHA_SPEC.upper[6] - 0.05)
    assert safe.events.clipped == 1


def test_per_tick_change_is_capped(robot, safe):
    safe.command(home())
    target = home()
    target[7] += 1.0          # right waist: 1 rad in one tick
    sent = safe.command(target)
    assert sent[7] == pytest.approx(ALOHA_SPEC.home[7] + ALOHA_SPEC.max_step[7])
    assert safe.events.rate_limited == 1
    assert np.allclose(robot.target()[7], sent[7])
    # The physical arm only ever moves toward the capped target.
    time.sleep(0.4)
    assert robot.arm.read_state().position[7] < ALOHA_SPEC.home[7] + ALOHA_SPEC.max_step[7] + 0.02


def test_watchdog_holds_the_measured_position(robot, safe):
    now = time.monotonic()
    start = robot.arm.read_state().position.copy()
    target = home()
    target[0] += 0.25
    safe.command(target, now=now)
    assert not safe.tick(now=now + 0.1)
    # The command source goes silent: the watchdog replaces the pending target with
    # the measured position, so the arm stays where it was instead of finishing the move.
    assert safe.tick(now=now + 0.5)
    assert safe.holding and safe.events.watchdog_holds == 1
    time.sleep(0.4)
    position = robot.arm.read_state().position
    assert np.allclose(robot.target(), robot.arm.read_state().target)
    assert abs(position[0] - target[0]) > 0.1
    assert np.allclose(position, start, atol=0.1)
