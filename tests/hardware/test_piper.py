"""The Piper adapter: the real piper-sdk over python-can's virtual bus, answered by a simulated
Piper controller (hardware/piper_fake.py) that speaks the SDK's CAN frames."""
from __future__ import annotations

import math
import time
import uuid

import numpy as np
import pytest

from hardware.arm import ArmConfig, ArmError
from hardware.factory import make_arm
from hardware.piper import (PIPER_SPEC, PiperArm, PiperConfig, gripper_to_sdk, rad_to_sdk, sdk_to_gripper,
                            sdk_to_rad)
from hardware.piper_fake import CAN_CTRL, STATUS_NORMAL, FakePiperFirmware
from hardware.safety import SafeArm, SafetyConfig

COLLISION = 0x07


def _wait_for(predicate, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def channels():
    tag = uuid.uuid4().hex[:8]      # piper-sdk caches one interface per CAN name: keep tests apart
    return f"left_{tag}", f"right_{tag}"


@pytest.fixture
def rig(channels):
    """Two simulated arms, enabled and holding a raised pose; the adapter not yet connected."""
    left = FakePiperFirmware(channels[0]).start()
    right = FakePiperFirmware(channels[1], joints_deg=(-10.0, 30.0, -40.0, 5.0, -5.0, 15.0), gripper_mm=20.0).start()
    arm = PiperArm(PiperConfig(left_can=channels[0], right_can=channels[1], bustype="virtual",
                               connect_timeout_s=2.0, feedback_timeout_s=0.3))
    yield arm, left, right
    arm.disconnect()
    left.close()
    right.close()


def test_unit_conversions():
    assert rad_to_sdk(np.array([math.pi / 2, -math.pi / 4, 0.001])) == [90000, -45000, 57]
    np.testing.assert_allclose(sdk_to_rad([90000, -45000]), [math.pi / 2, -math.pi / 4])
    assert gripper_to_sdk(0.5, 70.0) == 35000 and gripper_to_sdk(1.7, 70.0) == 70000 and gripper_to_sdk(-1, 70.0) == 0
    assert sdk_to_gripper(35000, 70.0) == pytest.approx(0.5)
    assert PIPER_SPEC.action_dim == 14 and PIPER_SPEC.gripper_indices == (6, 13)


def test_connect_enables_a_released_arm_and_takes_control(channels):
    with FakePiperFirmware(channels[0], joints_deg=(0,) * 6, enabled=False) as left, \
            FakePiperFirmware(channels[1], joints_deg=(0,) * 6, enabled=False) as right:
        arm = PiperArm(PiperConfig(left_can=channels[0], right_can=channels[1], bustype="virtual"))
        arm.connect()
        try:
            assert arm.is_connected
            for fw in (left, right):
                assert fw.all_enabled and fw.ctrl_mode == CAN_CTRL and fw.arm_status == STATUS_NORMAL
                assert fw.received[0x471] >= 1 and fw.received[0x150] == 0   # enabled, never reset
        finally:
            arm.disconnect()


def test_refuses_to_enable_when_told_not_to(channels):
    with FakePiperFirmware(channels[0], enabled=False), FakePiperFirmware(channels[1], enabled=False):
        arm = PiperArm(PiperConfig(left_can=channels[0], right_can=channels[1], bustype="virtual",
                                   enable_on_connect=False))
        with pytest.raises(ArmError, match="motors disabled"):
            arm.connect()


def test_reads_and_commands_in_sdk_units(rig):
    arm, left, right = rig
    arm.connect()
    state = arm.read_state()
    np.testing.assert_allclose(state.position[7:13], np.radians([-10, 30, -40, 5, -5, 15]), atol=1e-4)
    assert state.position[13] == pytest.approx(20 / 70, abs=1e-4)
    np.testing.assert_allclose(state.target, state.position, atol=1e-4)   # connect holds the measured pose

    target = state.position.astype(np.float64)
    target[0], target[6] = 0.25, 0.5                    # left joint1 0.25 rad, left gripper half open
    target[8], target[13] = 0.8, 1.0                     # right joint2, right gripper fully open
    arm.command(target)
    assert _wait_for(lambda: left.targets[0] == pytest.approx(math.degrees(0.25), abs=1e-3))
    assert right.targets[1] == pytest.approx(math.degrees(0.8), abs=1e-3)
    assert left.gripper_target == pytest.approx(35.0) and right.gripper_target == pytest.approx(70.0)
    assert _wait_for(lambda: abs(arm.read_state().position[0] - 0.25) < 1e-4)
    assert _wait_for(lambda: abs(arm.read_state().position[6] - 0.5) < 1e-3)


def test_limits_go_through_safearm(rig):
    arm, left, _ = rig
    arm.connect()
    safe = SafeArm(arm)
    start = arm.read_state().position.astype(np.float64)
    wild = start.copy()
    wild[0] = 9.0                                        # far beyond joint1's 2.6179 rad
    sent = safe.command(wild)
    assert sent[0] == pytest.approx(start[0] + PIPER_SPEC.max_step[0])   # clipped, then rate-limited
    assert safe.events.clipped == 1 and safe.events.rate_limited == 1
    assert _wait_for(lambda: left.targets[0] == pytest.approx(math.degrees(sent[0]), abs=1e-3))
    assert left.arm_status == STATUS_NORMAL             # nothing out of range ever reached the arm
    uncapped = SafeArm(arm, SafetyConfig(max_step=(10.0,) * 14))
    low = start.copy()
    low[1], low[2] = -0.5, 0.3                           # joint2 is [0, 3.14], joint3 [-2.967, 0]
    sent = uncapped.command(low)
    assert sent[1] == 0.0 and sent[2] == 0.0
    assert _wait_for(lambda: left.targets[1] == 0.0 and left.targets[2] == 0.0)
    assert left.arm_status == STATUS_NORMAL and left.err_code == 0


def test_disconnect_holds_and_never_releases(rig):
    arm, left, right = rig
    arm.connect()
    target = arm.read_state().position.astype(np.float64)
    target[1] += 0.5                                     # start a long move, then disconnect mid-way
    arm.command(target)
    time.sleep(0.05)
    arm.disconnect()
    assert not arm.is_connected
    held = list(left.joints)
    time.sleep(0.3)
    for fw in (left, right):
        assert fw.all_enabled and fw.disable_requests == 0 and fw.reset_requests == 0 and fw.emergency_stops == 0
        assert fw.received[0x150] == 0
    assert left.joints[1] == pytest.approx(held[1], abs=0.5)   # holding, not falling, not finishing the move
    assert left.joints[1] < math.degrees(target[1]) - 5


def test_refuses_an_arm_that_reports_an_error(channels):
    with FakePiperFirmware(channels[0]) as left, \
            FakePiperFirmware(channels[1], arm_status=COLLISION, err_code=0x0100) as right:
        arm = PiperArm(PiperConfig(left_can=channels[0], right_can=channels[1], bustype="virtual"))
        with pytest.raises(ArmError, match=r"right Piper .* reports COLLISION_OCCURRED .*never sends a reset"):
            arm.connect()
        assert not arm.is_connected
        assert right.received[0x155] == 0 and right.received[0x150] == 0   # no command, no reset
        assert left.all_enabled and left.disable_requests == 0              # the good arm was left holding


def test_lost_can_bus_raises_a_clear_error(rig):
    arm, left, _ = rig
    arm.connect()
    safe = SafeArm(arm)
    left.unplug()
    time.sleep(0.5)
    assert not arm.is_connected
    with pytest.raises(ArmError, match=r"left Piper .*CAN bus is lost"):
        arm.read_state()
    with pytest.raises(ArmError, match="CAN bus is lost"):
        safe.command(np.zeros(14))


def test_no_feedback_names_the_cable(channels):
    arm = PiperArm(PiperConfig(left_can=channels[0], right_can=channels[1], bustype="virtual",
                               connect_timeout_s=0.3))
    with pytest.raises(ArmError, match=rf"no feedback .*candump {channels[0]}"):
        arm.connect()


def test_missing_can_interface_names_the_fix():
    arm = PiperArm(PiperConfig(left_can="can_missing0", right_can="can_missing1"))
    with pytest.raises(ArmError, match=r"`sudo ip link set can_missing0 up type can bitrate 1000000`"):
        arm.connect()


def test_factory_builds_piper_and_explains_typos(channels):
    arm = make_arm(ArmConfig(adapter="piper", port="can_a,can_b", options={"speed_percent": 30}))
    assert isinstance(arm, PiperArm)
    assert (arm.config.left_can, arm.config.right_can, arm.config.speed_percent) == ("can_a", "can_b", 30)
    with pytest.raises(ValueError, match=r"valid names: piper, sim\. Did you mean 'piper'"):
        make_arm(ArmConfig(adapter="pipr"))
    with pytest.raises(ValueError, match=r"Did you mean 'speed_percent'"):
        make_arm(ArmConfig(adapter="piper", options={"speed_percnt": 30}))
    with pytest.raises(ValueError, match="LEFT,RIGHT"):
        make_arm(ArmConfig(adapter="piper", port="can0"))
    with pytest.raises(ValueError, match="SimRobot"):
        make_arm(ArmConfig(adapter="sim"))


def test_simulated_firmware_option_runs_without_hardware(channels):
    arm = make_arm(ArmConfig(adapter="piper", port=",".join(channels),
                             options={"bustype": "virtual", "simulate_firmware": True}))
    arm.connect()
    try:
        assert arm.is_connected and len(arm.simulated) == 2
        assert arm.read_state().position.shape == (14,)
    finally:
        arm.disconnect()
    assert arm.simulated == []
