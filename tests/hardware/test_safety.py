"""SafeArm on its own: every refusal holds, limits and per-tick caps hold, the watchdog fires
after its interval and not before, dry-run sends nothing."""
from __future__ import annotations

import time

import numpy as np
import pytest

from hardware.arm import Arm, ArmError, ArmState, RobotSpec
from hardware.safety import SafeArm, SafetyConfig, UnsafeCommandError

SPEC = RobotSpec(name="test-3dof", joint_names=("shoulder", "elbow", "gripper"),
                 lower=(-1.0, -2.0, 0.0), upper=(1.0, 2.0, 1.0), home=(0.0, 0.5, 0.5),
                 gripper_indices=(2,), control_hz=10.0, max_step=(0.1, 0.2, 0.5))


class RecordingArm(Arm):
    """Implements the Arm interface exactly: records each command and moves there at once."""

    def __init__(self, spec: RobotSpec = SPEC):
        self.spec = spec
        self.position = np.asarray(spec.home, dtype=np.float32)
        self.commands: list[np.ndarray] = []
        self._connected = False

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self.hold()
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    def read_state(self) -> ArmState:
        return ArmState(position=self.position.copy(), timestamp=time.monotonic(),
                        target=self.commands[-1] if self.commands else None)

    def command(self, target: np.ndarray) -> None:
        assert target.shape == (self.spec.action_dim,) and np.all(np.isfinite(target))
        self.commands.append(np.array(target))
        self.position = np.array(target, dtype=np.float32)


@pytest.fixture
def arm() -> RecordingArm:
    a = RecordingArm()
    a.connect()
    return a


def test_small_step_within_limits_passes_unchanged(arm):
    safe = SafeArm(arm)
    sent = safe.command([0.05, 0.6, 0.4], now=0.0)
    np.testing.assert_allclose(sent, [0.05, 0.6, 0.4])
    np.testing.assert_allclose(arm.commands[-1], [0.05, 0.6, 0.4], rtol=1e-6)
    assert not safe.holding and safe.events.clipped == 0 and safe.events.rate_limited == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_are_refused_with_a_hold(arm, bad):
    safe = SafeArm(arm)
    safe.command([0.05, 0.6, 0.5], now=0.0)
    before = arm.position.copy()
    with pytest.raises(UnsafeCommandError, match="NaN/inf for elbow"):
        safe.command([0.0, bad, 0.5], now=0.1)
    assert safe.holding and safe.events.rejected == 1
    np.testing.assert_array_equal(arm.commands[-1], before)   # the hold re-sent the measured position
    assert all(np.all(np.isfinite(c)) for c in arm.commands)
    assert "refused" in safe.events.last_error


@pytest.mark.parametrize("shape", [(2,), (4,), (1, 3), ()])
def test_wrong_shape_is_refused_with_a_hold(arm, shape):
    safe = SafeArm(arm)
    with pytest.raises(UnsafeCommandError, match=r"needs \(3,\)"):
        safe.command(np.zeros(shape), now=0.0)
    assert safe.holding and len(arm.commands) == 1
    np.testing.assert_array_equal(arm.commands[0], np.asarray(SPEC.home, np.float32))


@pytest.mark.parametrize("junk", [None, "home", [0.1, "x", 0.2], [[0.1], [0.2, 0.3]]])
def test_non_numeric_commands_are_refused_with_a_hold(arm, junk):
    safe = SafeArm(arm)
    with pytest.raises(UnsafeCommandError, match="not numeric|needs"):
        safe.command(junk, now=0.0)
    assert safe.holding and safe.events.rejected == 1


def test_targets_are_clipped_to_limits_with_margin(arm):
    safe = SafeArm(arm, SafetyConfig(limit_margin=0.1, max_step=(10.0, 10.0, 10.0)))
    sent = safe.command([5.0, -5.0, 2.0], now=0.0)
    np.testing.assert_allclose(sent, [0.9, -1.9, 0.9])
    assert safe.events.clipped == 1
    assert np.all(arm.position <= np.asarray(SPEC.upper) - 0.1 + 1e-6)
    with pytest.raises(ValueError, match="no joint range"):
        SafeArm(arm, SafetyConfig(limit_margin=0.6))


def test_rounding_past_a_limit_is_clamped_but_not_counted(arm):
    safe = SafeArm(arm, SafetyConfig(max_step=(10.0, 10.0, 10.0)))
    upper = np.asarray(SPEC.upper)
    sent = safe.command(upper + [0.02, 0.0, 0.0], now=0.0)       # a saturated target, sampled 0.02 past
    np.testing.assert_allclose(sent, upper)                       # clamped all the same
    assert safe.events.clipped == 0
    safe.command(upper + [0.0, 0.05, 0.0], now=0.1)               # past the tolerance: a real clip
    assert safe.events.clipped == 1
    strict = SafeArm(arm, SafetyConfig(max_step=(10.0, 10.0, 10.0), limit_tolerance=0.0))
    strict.command(upper + [0.001, 0.0, 0.0], now=0.2)
    assert strict.events.clipped == 1
    with pytest.raises(ValueError, match="limit_tolerance"):
        SafeArm(arm, SafetyConfig(limit_tolerance=-1.0))


def test_per_tick_change_is_capped_from_the_measured_pose(arm):
    safe = SafeArm(arm)   # max_step from the RobotSpec: (0.1, 0.2, 0.5)
    home = np.asarray(SPEC.home)
    sent = safe.command([1.0, 2.0, 1.0], now=0.0)
    np.testing.assert_allclose(sent, home + [0.1, 0.2, 0.5])
    assert safe.events.rate_limited == 1
    # Repeating the far target walks there one capped step per tick, never more.
    positions = [arm.position.copy()]
    for tick in range(1, 20):
        safe.command([1.0, 2.0, 1.0], now=tick * 0.1)
        positions.append(arm.position.copy())
    steps = np.abs(np.diff(np.asarray(positions), axis=0))
    assert np.all(steps <= np.asarray(SPEC.max_step) + 1e-6)
    np.testing.assert_allclose(positions[-1], [1.0, 2.0, 1.0], atol=1e-6)


def test_first_command_after_a_hold_cannot_jump(arm):
    safe = SafeArm(arm)
    safe.command([0.1, 0.6, 0.5], now=0.0)
    arm.position = np.array([-0.5, 0.0, 0.5], np.float32)   # pushed away while holding
    safe.hold()
    sent = safe.command([0.1, 0.6, 0.5], now=0.1)
    np.testing.assert_allclose(sent, [-0.4, 0.2, 0.5], atol=1e-6)   # capped from the measured pose


def test_watchdog_holds_after_the_interval_and_not_before(arm):
    safe = SafeArm(arm, SafetyConfig(watchdog_s=0.2))
    assert safe.tick(now=100.0) is False          # nothing commanded yet: already holding
    safe.command([0.05, 0.6, 0.5], now=10.0)
    n = len(arm.commands)
    assert safe.tick(now=10.1) is False
    assert safe.tick(now=10.2) is False           # exactly at the interval: still fresh
    assert len(arm.commands) == n and not safe.holding
    arm.position = np.array([0.07, 0.61, 0.5], np.float32)   # where the arm really is
    assert safe.tick(now=10.25) is True
    assert safe.holding and safe.events.watchdog_holds == 1
    np.testing.assert_allclose(arm.commands[-1], [0.07, 0.61, 0.5])   # holds the measured position
    assert safe.tick(now=11.0) is False           # one hold, not one per tick
    safe.command([0.1, 0.6, 0.5], now=11.0)       # a fresh command resumes
    assert not safe.holding and safe.tick(now=11.1) is False


def test_watchdog_with_real_clock(arm):
    safe = SafeArm(arm, SafetyConfig(watchdog_s=0.05))
    safe.command([0.05, 0.6, 0.5])
    assert safe.tick() is False
    time.sleep(0.08)
    assert safe.tick() is True


def test_watchdog_thread_holds_on_time_without_any_tick(arm):
    """start_watchdog(): the deadline is enforced by SafeArm itself, not at the caller's next tick."""
    safe = SafeArm(arm, SafetyConfig(watchdog_s=0.1))
    safe.start_watchdog()
    try:
        for _ in range(5):                        # commands faster than the watchdog: no hold
            safe.command([0.05, 0.6, 0.5])
            time.sleep(0.03)
        assert not safe.holding and safe.events.watchdog_holds == 0
        time.sleep(0.4)                           # silence, and nobody calls tick()
        assert safe.holding and safe.events.watchdog_holds == 1
        last_command, held_at = safe.events.last_watchdog_hold
        late = held_at - last_command - 0.1
        assert 0 <= late < 0.05, f"the hold came {late * 1000:.1f} ms after the deadline"
        assert safe.tick() is False               # one hold, not two
        safe.command([0.06, 0.6, 0.5])            # a command resumes; the thread guards it again
        time.sleep(0.3)
        assert safe.holding and safe.events.watchdog_holds == 2
    finally:
        safe.stop_watchdog()
    safe.command([0.05, 0.6, 0.5])
    time.sleep(0.25)
    assert not safe.holding and safe.events.watchdog_holds == 2      # stopped: only tick() holds now
    assert safe.tick() is True


def test_dry_run_checks_but_sends_nothing(arm):
    safe = SafeArm(arm, SafetyConfig(dry_run=True))
    sent = safe.command([5.0, 0.5, 0.5], now=0.0)
    np.testing.assert_allclose(sent, [0.1, 0.5, 0.5])   # still clipped and capped
    with pytest.raises(UnsafeCommandError):
        safe.command([np.nan, 0.5, 0.5], now=0.1)
    safe.hold()
    safe.command([0.05, 0.5, 0.5], now=1.0)
    assert safe.tick(now=5.0) is True
    assert arm.commands == []
    np.testing.assert_array_equal(arm.position, np.asarray(SPEC.home, np.float32))


def test_wrong_length_max_step_is_refused_at_construction(arm):
    with pytest.raises(ValueError, match="max_step has 2 entries"):
        SafeArm(arm, SafetyConfig(max_step=(0.1, 0.1)))


def test_a_nan_measured_position_never_reaches_the_arm(arm):
    """A faulty encoder reading must not become the hold target or the rate-limit reference."""
    safe = SafeArm(arm)
    safe.command([0.05, 0.6, 0.4], now=0.0)
    last_good = arm.commands[-1].copy()
    arm.position = np.array([np.nan, 0.6, 0.4], dtype=np.float32)
    with pytest.raises(ArmError, match="invalid position"):
        safe.hold()
    # the arm was re-sent its last finite target instead (RecordingArm asserts every command is finite)
    np.testing.assert_allclose(arm.commands[-1], last_good)
    assert safe.holding
    arm.position = np.array([np.nan, 0.6, 0.4], dtype=np.float32)   # the fault persists
    # after a hold the reference is the measured position: a NaN one refuses the command
    with pytest.raises(ArmError, match="invalid position"):
        safe.command([0.05, 0.6, 0.4], now=0.1)
    assert all(np.all(np.isfinite(c)) for c in arm.commands)


def test_a_hold_keeps_the_gripper_squeezing(arm):
    """STOP must not open a gripper that holds an object: grippers keep their commanded opening."""
    safe = SafeArm(arm)
    safe.command([0.05, 0.6, 0.0], now=0.0)          # close the gripper (the cap allows 0.5 per tick)
    arm.position = np.array([0.05, 0.6, 0.3], dtype=np.float32)   # blocked by an object 0.3 wide
    held = safe.hold()
    assert held[2] == 0.0 and arm.commands[-1][2] == 0.0          # still squeezing
    np.testing.assert_allclose(held[:2], [0.05, 0.6], rtol=1e-6)  # joints hold where they are


def test_after_a_rebase_a_hold_keeps_the_pose_the_arm_was_moved_to(arm):
    """A sim scene reset moves the arm to home with the gripper open; a hold right after must not
    close the gripper again to the previous episode's grip (it did: the next rollout then started
    with a shut gripper)."""
    safe = SafeArm(arm)
    safe.command([0.05, 0.6, 0.0], now=0.0)                          # the last episode ended gripping
    arm.position = np.array([0.0, 0.5, 1.0], dtype=np.float32)       # reset: home, gripper open
    safe.rebase()
    held = safe.hold()
    np.testing.assert_allclose(held, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(arm.commands[-1], [0.0, 0.5, 1.0])
    assert safe.holding
