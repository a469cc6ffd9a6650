"""Piper leader arms through the real piper-sdk over python-can's virtual bus, answered by simulated
Piper controllers (hardware/piper_fake.py) playing leaders; leader-follower onto a simulated Piper
follower and onto the MuJoCo sim, at the control rate, with measured tracking error and rate."""
from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pytest

from hardware.factory import load_rig, make_leader, rig_from_dict
from hardware.leader import LeaderConfig, LeaderError, LeaderFollowConfig
from hardware.leader_follow import FollowState, LeaderFollower, LeaderNotAlignedError
from hardware.piper import PiperArm, PiperConfig
from hardware.piper_fake import FakePiperFirmware
from hardware.piper_leader import PiperLeader, PiperLeaderConfig
from hardware.safety import SafeArm, SafetyConfig

HZ = 10.0                                   # the Piper's and the sim's control rate (RobotSpec.control_hz)
BASE_DEG = (0.0, 35.0, -35.0, 0.0, 25.0, 0.0)
BASE_GRIPPER_MM = 35.0
AMPLITUDE_DEG, PERIOD_S = 17.0, 4.0         # 0.3 rad, peak 0.47 rad/s: below the Piper's 1 rad/s cap
# The measured figures, printed by the tracking tests (pytest -s), were on this 2-core machine with
# other work running; the bounds leave room for a busier machine.
MAX_ERROR_RAD, MEAN_ERROR_RAD, MIN_RATE_HZ = 0.12, 0.08, 9.0


def wave(phase: float = 0.0):
    """The hand on a leader: every joint swings +-17 deg around BASE_DEG, the gripper closes and opens."""
    w = 2 * math.pi / PERIOD_S

    def trajectory(t):
        joints = [b + AMPLITUDE_DEG * math.sin(w * t + phase + j) * (1 if j % 2 == 0 else -1) -
                  AMPLITUDE_DEG * math.sin(phase + j) * (1 if j % 2 == 0 else -1) for j, b in enumerate(BASE_DEG)]
        return joints, BASE_GRIPPER_MM - 15.0 * (1 - math.cos(w * t))
    return trajectory


def still(joints_deg, gripper_mm):
    return lambda t: (joints_deg, gripper_mm)


@pytest.fixture
def channels():
    tag = uuid.uuid4().hex[:8]              # piper-sdk caches one interface per CAN name: keep tests apart
    return {k: f"{k}_{tag}" for k in ("lead_l", "lead_r", "fol_l", "fol_r")}


@pytest.fixture
def leaders(channels):
    arms = [FakePiperFirmware(channels[k], joints_deg=BASE_DEG, gripper_mm=BASE_GRIPPER_MM, leader="master").start()
            for k in ("lead_l", "lead_r")]
    leader = PiperLeader(PiperLeaderConfig(left_can=channels["lead_l"], right_can=channels["lead_r"], bustype="virtual",
                                           connect_timeout_s=2.0))
    yield leader, arms
    leader.close()
    for fw in arms:
        fw.close()


@dataclass
class FollowRun:
    results: list                   # the FollowTicks
    tracking: np.ndarray            # per tick: max |leader - follower measured| over the joints (rad)
    servo: np.ndarray               # per tick: max |follower measured - target sent the tick before| (rad)
    rate_hz: float                  # achieved tick rate

    def assert_tracks(self) -> None:
        """The follower tracks: 90% of ticks within MAX_ERROR_RAD, mean within MEAN_ERROR_RAD, and no
        tick off by more than the wave's own swing (which following the wrong way would give). Not
        every tick within MAX_ERROR_RAD: a thread starved for half a second in a full suite on 2 busy
        cores (seen: 0.27 rad for two ticks, back under 0.05 rad three ticks later) lags the
        follower like any half-second stall; a held or stale reading is the dead-man's test."""
        assert np.percentile(self.tracking, 90) < MAX_ERROR_RAD, self.tracking.round(3).tolist()
        assert self.tracking.mean() < MEAN_ERROR_RAD, self.tracking.round(3).tolist()
        assert self.tracking.max() < 2 * np.radians(AMPLITUDE_DEG), self.tracking.round(3).tolist()

    def summary(self, label: str) -> str:
        return (f"{label} at {self.rate_hz:.2f} Hz over {len(self.results)} ticks: tracking error max "
                f"{self.tracking.max():.4f} rad, mean {self.tracking.mean():.4f} rad; follower vs previous "
                f"command max {self.servo.max():.4f} rad, mean {self.servo.mean():.4f} rad")


def run_follow(follow: LeaderFollower, seconds: float, hz: float = HZ, on_tick=None) -> FollowRun:
    """Tick at hz for `seconds` the way the control loop does, and measure."""
    period = 1.0 / hz
    joints = [i for i in range(follow.arm.spec.action_dim) if i not in follow.arm.spec.gripper_indices]
    results, stamps, tracking, servo = [], [], [], []
    start = next_tick = time.monotonic()
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        stamps.append(now)
        state = follow.arm.read_state()
        result = follow.tick(now, state)
        if result.tracking_error is not None:
            tracking.append(result.tracking_error)
        if results and results[-1].commanded:
            servo.append(float(np.max(np.abs(state.position - results[-1].sent)[joints])))
        results.append(result)
        if on_tick:
            on_tick(len(results), result)
        next_tick += period
        time.sleep(max(0.0, next_tick - time.monotonic()))
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return FollowRun(results, np.asarray(tracking), np.asarray(servo), rate)


# -- the adapter ------------------------------------------------------------------------------------------
def test_reads_leader_frames_in_sdk_units_and_sends_nothing(leaders):
    leader, (left, right) = leaders
    left.play(still((10.0, 20.0, -30.0, 5.0, -5.0, 15.0), 70.0))
    right.play(still((-10.0, 40.0, -20.0, 0.0, 30.0, 0.0), 0.0))
    leader.connect()
    assert leader.is_connected and leader.sources == ["master", "master"]
    time.sleep(0.1)
    reading = leader.read()
    np.testing.assert_allclose(reading.position[:6], np.radians([10, 20, -30, 5, -5, 15]), atol=1e-5)
    np.testing.assert_allclose(reading.position[7:13], np.radians([-10, 40, -20, 0, 30, 0]), atol=1e-5)
    assert reading.position[6] == pytest.approx(1.0) and reading.position[13] == pytest.approx(0.0)
    assert 0 <= time.monotonic() - reading.timestamp < 0.1
    left.play(wave())
    time.sleep(0.5)
    assert abs(leader.read().position[0] - reading.position[0]) > 0.01    # follows the hand
    assert sum(left.received.values()) == 0 and sum(right.received.values()) == 0   # read-only: not one frame


def test_drag_teach_feedback_and_auto_source(channels):
    with FakePiperFirmware(channels["lead_l"], joints_deg=BASE_DEG, leader="drag") as left, \
            FakePiperFirmware(channels["lead_r"], joints_deg=BASE_DEG, leader="master", leader_feedback=True):
        leader = PiperLeader(PiperLeaderConfig(left_can=channels["lead_l"], right_can=channels["lead_r"],
                                               bustype="virtual"))
        leader.connect()
        try:
            assert leader.sources == ["feedback", "master"]   # auto: leader frames where they come
            left.play(still((20.0, 30.0, -40.0, 0.0, 0.0, 0.0), 35.0))
            time.sleep(0.1)
            position = leader.read().position
            np.testing.assert_allclose(position[:6], np.radians([20, 30, -40, 0, 0, 0]), atol=1e-5)
            assert position[6] == pytest.approx(0.5)
        finally:
            leader.close()


def test_silent_bus_names_the_fix(channels):
    leader = PiperLeader(PiperLeaderConfig(left_can=channels["lead_l"], right_can=channels["lead_r"],
                                           bustype="virtual", connect_timeout_s=0.3, source="master"))
    with pytest.raises(LeaderError, match=rf"left Piper leader .*0x155-0x157.*candump {channels['lead_l']}"
                                          r".*MasterSlaveConfig\(0xFA"):
        leader.connect()
    assert not leader.is_connected


def test_stale_readings_age(leaders):
    leader, (left, _) = leaders
    leader.connect()
    left.unplug()
    time.sleep(0.3)
    assert time.monotonic() - leader.read().timestamp > 0.25


def test_factory_and_rig_files(channels, tmp_path):
    leader = make_leader(LeaderConfig(port="can_a, can_b", options={"source": "master"}))
    assert isinstance(leader, PiperLeader)
    assert (leader.config.left_can, leader.config.right_can, leader.config.source) == ("can_a", "can_b", "master")
    with pytest.raises(ValueError, match=r"Did you mean 'piper'"):
        make_leader(LeaderConfig(adapter="pipr"))
    with pytest.raises(ValueError, match=r"Did you mean 'source'"):
        make_leader(LeaderConfig(options={"sorce": "master"}))
    with pytest.raises(ValueError, match="source must be one of auto, master, feedback"):
        make_leader(LeaderConfig(options={"source": "both"}))
    with pytest.raises(ValueError, match="LEFT,RIGHT"):
        make_leader(LeaderConfig(port="can0"))

    rig = rig_from_dict({"arm": {"adapter": "sim"}, "leader": {
        "port": "can_x,can_y", "follow": {"align_tolerance_rad": 0.05, "offset": [0.1] * 14}}})
    assert rig.leader.adapter == "piper" and rig.leader.port == "can_x,can_y"
    assert rig.leader.follow.align_tolerance_rad == 0.05 and rig.leader.follow.offset == (0.1,) * 14
    assert rig_from_dict({}).leader is None
    for data, message in [({"leader": {"adaptr": "piper"}}, r"\[leader\]: unknown setting 'adaptr'"),
                          ({"leader": {"follow": {"stale": 1}}},
                           r"\[leader.follow\]: unknown setting 'stale'.*stale_s"),
                          ({"leader": {"follow": {"stale_s": -1}}}, r"\[leader.follow\]: stale_s must be positive"),
                          ({"leader": {"adapter": "gello"}}, r"unknown leader adapter 'gello'")]:
        with pytest.raises(ValueError, match=message):
            rig_from_dict(data, where="rig file x.toml")

    from pathlib import Path
    shipped = load_rig(str(Path(__file__).resolve().parents[2] / "assets" / "rigs" / "piper_leader_sim.toml"))
    assert shipped.arm.adapter == "sim" and shipped.leader.adapter == "piper"
    scale, offset = shipped.leader.follow.joint_map(14)
    assert offset[1] == pytest.approx(-0.528) and np.all(scale == 1)


def test_simulated_firmware_option(channels):
    leader = make_leader(LeaderConfig(port=f"{channels['lead_l']},{channels['lead_r']}",
                                      options={"bustype": "virtual", "simulate_firmware": True}))
    leader.connect()
    try:
        assert len(leader.simulated) == 2 and leader.read().position.shape == (14,)
    finally:
        leader.close()
    assert leader.simulated == []


# -- leader-follower onto a simulated Piper follower ---------------------------------------------------------
@pytest.fixture
def piper_follower(channels):
    arms = [FakePiperFirmware(channels[k], joints_deg=BASE_DEG, gripper_mm=BASE_GRIPPER_MM).start()
            for k in ("fol_l", "fol_r")]
    # A tolerant bus-loss timeout: in a long pytest process other tests' threads can starve the fake
    # firmware for half a second (seen once in a full run); this test is about tracking, not bus loss.
    arm = PiperArm(PiperConfig(left_can=channels["fol_l"], right_can=channels["fol_r"], bustype="virtual",
                               connect_timeout_s=2.0, feedback_timeout_s=2.0))
    arm.connect()
    yield SafeArm(arm, SafetyConfig(watchdog_s=0.2)), arms
    arm.disconnect()
    for fw in arms:
        fw.close()


def test_piper_follower_tracks_the_leader(leaders, piper_follower):
    leader, (left, right) = leaders
    safe, _ = piper_follower
    leader.connect()
    # stale_s 1.0 s, not the default: a CAN thread starved for a few hundred ms in a full suite made a
    # reading stale, the dead-man held, and the re-sync rule (hold until aligned) then held the rest of
    # the wave. The dead-man has its own test below; this one is about tracking.
    follow = LeaderFollower(leader, safe, LeaderFollowConfig(stale_s=1.0))
    follow.start()
    left.play(wave())
    right.play(wave(phase=1.0))
    run = run_follow(follow, seconds=4.0)
    print("\n" + run.summary("Piper leader -> simulated Piper follower"))
    # Every tick follows, except that a starved CAN thread (seen in long pytest runs on 2 busy cores) may
    # make a reading stale for a tick or two: then the dead-man holds, which is right; more is a failure.
    following = [r.commanded and r.state == FollowState.FOLLOWING for r in run.results]
    assert sum(following) >= 0.9 * len(following), [(r.state.value, r.message) for r in run.results]
    assert all(ok or r.state == FollowState.HOLDING for ok, r in zip(following, run.results))
    assert run.rate_hz >= MIN_RATE_HZ
    run.assert_tracks()
    assert safe.events.rejected == 0


def test_refuses_to_start_when_the_leader_is_elsewhere(leaders, piper_follower):
    leader, (left, _) = leaders
    safe, (follower_left, _) = piper_follower
    off = list(BASE_DEG)
    off[1] += 20.0
    left.play(still(off, BASE_GRIPPER_MM))
    leader.connect()
    time.sleep(0.1)
    follow = LeaderFollower(leader, safe)
    commands_before = follower_left.received[0x155]
    with pytest.raises(LeaderNotAlignedError, match=r"left_joint2 off by 0\.349 rad \(20\.0 deg; leader 0\.960, "
                                                    r"follower 0\.611\)") as err:
        follow.start()
    assert "right_" not in str(err.value)
    assert follow.state == FollowState.IDLE
    time.sleep(0.2)
    assert follower_left.received[0x155] == commands_before       # not one joint command went out


def test_stale_leader_holds_the_follower_then_resumes_when_aligned(leaders, piper_follower):
    leader, (left, right) = leaders
    safe, (follower_left, _) = piper_follower
    leader.connect()
    follow = LeaderFollower(leader, safe, LeaderFollowConfig(stale_s=0.1))
    follow.start()
    left.play(wave())
    state = {}

    def unplug_midway(tick, result):
        if tick == 10:
            left.unplug()                   # the leader's CAN cable comes off, mid-motion
            state["unplugged_at"] = time.monotonic()
        if result.state == FollowState.HOLDING and "held_at" not in state:
            state["held_at"] = time.monotonic()
            state["held_pose"] = list(follower_left.joints)
    results = run_follow(follow, seconds=2.0, on_tick=unplug_midway).results
    hold_delay = state["held_at"] - state["unplugged_at"]
    print(f"\nstale leader -> hold after {hold_delay * 1000:.0f} ms (stale_s 100 ms, ticks of 100 ms)")
    assert hold_delay < 0.1 + 2 / HZ
    assert follow.stale_holds == 1 and safe.holding
    assert "leader stale" in results[-1].message
    first_hold = next(i for i, r in enumerate(results) if r.state == FollowState.HOLDING)
    assert not any(r.commanded for r in results[first_hold:])     # no command once the dead-man let go
    np.testing.assert_allclose(follower_left.joints, state["held_pose"], atol=1.0)   # holding, degrees
    assert follower_left.all_enabled and follower_left.reset_requests == 0 and follower_left.disable_requests == 0

    # the leader comes back where the hand left it (elsewhere): fresh but misaligned -> still holding
    left.play(still(list(np.add(follower_left.joints, [15, 0, 0, 0, 0, 0])), BASE_GRIPPER_MM))
    left.replug()
    time.sleep(0.1)
    result = follow.tick()
    assert result.state == FollowState.HOLDING and not result.commanded
    assert "left_joint1 off by 0.26" in result.message
    # the operator matches the follower's pose: mirroring resumes
    left.play(still(list(follower_left.joints), BASE_GRIPPER_MM))
    time.sleep(0.1)
    result = follow.tick()
    assert result.state == FollowState.FOLLOWING and result.commanded


# -- leader-follower onto the MuJoCo sim (the rig option: [arm] adapter = "sim") --------------------------------
def test_sim_follower_tracks_the_leader(leaders):
    from hardware.sim.env import ALOHA_SPEC, SimConfig
    from hardware.sim.robot import SimRobot

    leader, (left, right) = leaders
    leader.connect()
    robot = SimRobot(SimConfig(width=64, height=48), camera_fps=2)
    robot.start()
    try:
        safe = SafeArm(robot.arm, SafetyConfig(watchdog_s=0.2))
        home = np.asarray(ALOHA_SPEC.home, dtype=np.float64)
        base = np.concatenate([np.radians(BASE_DEG), [BASE_GRIPPER_MM / 70.0]] * 2)
        # The joint map of assets/rigs/piper_leader_sim.toml, anchored at the leader's start pose.
        config = LeaderFollowConfig(offset=tuple(home - base))
        follow = LeaderFollower(leader, safe, config)
        moved = base.copy()
        moved[1] += 0.3
        left.play(still(np.degrees(moved[:6]), BASE_GRIPPER_MM))
        time.sleep(0.1)
        with pytest.raises(LeaderNotAlignedError, match=r"left_shoulder \(leader left_joint2\) off by 0\.300 rad"):
            follow.start()
        left.play(wave())
        right.play(wave(phase=1.0))
        time.sleep(0.1)
        follow.start()
        run = run_follow(follow, seconds=4.0)
        print("\n" + run.summary("Piper leader -> MuJoCo sim follower"))
        assert all(r.commanded for r in run.results)
        assert run.rate_hz >= MIN_RATE_HZ
        run.assert_tracks()
        left.unplug()
        right.unplug()
        time.sleep(0.15)
        assert follow.tick().state == FollowState.HOLDING and safe.holding
    finally:
        robot.close()
