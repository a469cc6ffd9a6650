"""run_demo's stack (app/stack.py DemoStack) on the two leader rigs: "leader = Piper over CAN, follower =
sim" (assets/rigs/piper_leader_sim.toml) and "leader = Piper, follower = Piper" (piper_leader_piper.toml,
--robot piper). The rig file's [leader] is read by hardware.factory; the stack connects the leaders (the
real piper-sdk over python-can's virtual bus, answered by simulated Piper controllers playing leaders,
hardware/piper_fake.py; the Piper followers are simulated controllers too) and the console offers
leader-follow mode. Through the stack's console: it refuses to start while the leaders disagree with the
follower, then the follower tracks a moving leader at the control rate."""
from __future__ import annotations

import json
import math
import time
import tomllib
import uuid
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from app.control.records import Mode
from hardware.leader_follow import FollowState
from policy.wire.netutil import free_port

REPO = Path(__file__).resolve().parents[2]
RIGS = REPO / "assets" / "rigs"
AMPLITUDE_DEG, PERIOD_S = 17.0, 4.0       # 0.3 rad, peak 0.47 rad/s (the Piper follower's cap: 1.57 rad/s)
# The bounds of the adapter-level tests (tests/hardware/test_piper_leader.py): the follower lags the leader
# by about one control tick (peak 0.047 rad at this speed) plus its servo's error. Control rate: 10 Hz.
# On 2 cores shared with other work a tick can come late, and the leader moves further meanwhile: the
# bound holds for 90% of the ticks, the mean for all (measured on a busy machine: max 0.06, mean 0.04-0.05).
MAX_ERROR_RAD, MEAN_ERROR_RAD, MIN_RATE_HZ, WITHIN = 0.12, 0.08, 9.0, 0.9


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def hand(base_deg, base_mm: float, phase: float = 0.0):
    """A hand moving a leader away from base and back: every joint swings up to 17 deg, joint2 only up and
    joint3 only down (the Piper's hard stops at its rest pose), the gripper by 20 mm."""
    w = 2 * math.pi / PERIOD_S
    grip = 20.0 if base_mm < 35.0 else -20.0

    def trajectory(t):
        swing = AMPLITUDE_DEG * math.sin(w * t + phase) - AMPLITUDE_DEG * math.sin(phase)
        lift = AMPLITUDE_DEG * (1 - math.cos(w * t)) / 2
        deltas = [swing, lift, -lift, -swing, swing, swing]
        return [b + d for b, d in zip(base_deg, deltas)], base_mm + grip * (1 - math.cos(w * t)) / 2
    return trajectory


def replay_cameras(tmp: Path) -> list[dict]:
    """Three cameras replaying a small recorded dataset (the real rig's RealSense cameras are not here)."""
    from policy.episodes.synthetic import write_synthetic
    root = write_synthetic(tmp / "recorded", episodes=1, frames=30, imagined=False)
    return [{"name": name, "adapter": "replay", "source": str(root), "width": 64, "height": 48, "fps": 10,
             "options": {"loop": True}} for name in ("head", "left_wrist", "right_wrist")]


@pytest.fixture(scope="module", params=["sim", "piper"])
def stack(request, tmp_path_factory):
    """The stack on a shipped leader rig, its CAN interfaces virtual and its arms simulated controllers."""
    from app.stack import DemoStack, StackConfig
    follower = request.param
    tmp = tmp_path_factory.mktemp(f"rig_{follower}")
    with open(RIGS / f"piper_leader_{follower}.toml", "rb") as f:
        rig = tomllib.load(f)
    tag = uuid.uuid4().hex[:8]              # piper-sdk caches one interface per CAN name
    rig["leader"]["port"] = f"lead_l_{tag},lead_r_{tag}"
    rig["leader"]["options"] = {"bustype": "virtual", "simulate_firmware": True, "source": "master"}
    # The simulated controllers are threads of this process: on 2 cores shared with other work they can be
    # starved for a few hundred ms (435 ms seen in a full suite), which the real arms never are. Tolerances
    # for that, not for the arms: the dead-man (stale_s) and a lost bus (feedback_timeout_s) keep their own
    # tests (tests/hardware/test_leader_follow.py, test_piper_leader.py).
    rig["leader"]["follow"]["stale_s"] = 1.0
    if follower == "piper":
        rig["arm"]["port"] = f"fol_l_{tag},fol_r_{tag}"
        rig["arm"]["options"] = {**rig["arm"].get("options", {}), "bustype": "virtual", "simulate_firmware": True,
                                 "feedback_timeout_s": 2.0, "connect_timeout_s": 5.0}
        rig["cameras"] = replay_cameras(tmp)
    path = tmp / "rig.json"                 # rig files may be JSON too
    path.write_text(json.dumps(rig))
    stack = DemoStack(StackConfig(robot=follower, rig=str(path), policy_args=["--runner", "testing"], dataset=None,
                                  port=free_port(), policy_port=free_port(), open_browser=False, camera_fps=5,
                                  width=64, height=48))
    try:
        stack.start()
        stack.operator = SimpleNamespace(session_hash=f"operator-{tag}")   # one browser tab's identity
        stack.console.take_control(stack.operator)
        yield stack
    finally:
        stack.close()


def follower_pose(stack) -> list[tuple[list[float], float]]:
    """Where the left and right leaders must be to agree with the follower now: (6 joints in degrees,
    gripper mm) each, through the inverse of the rig's joint map (the shipped sim rig puts the Piper's rest
    pose on the sim's home)."""
    spec = stack.arm.spec
    scale, offset = stack.rig.leader.follow.joint_map(spec.action_dim)
    state = stack.arm.read_state()
    pose = (np.asarray(state.position, np.float64) - offset) / scale
    if state.target is not None:                        # grippers: the commanded opening (what alignment uses)
        pose[list(spec.gripper_indices)] = ((np.asarray(state.target, np.float64) - offset) / scale)[
            list(spec.gripper_indices)]
    return [([float(v) for v in np.degrees(pose[k:k + 6])], 70.0 * float(pose[k + 6])) for k in (0, 7)]


def record_ticks(stack) -> list:
    """(timestamp, mode, commanded, measured state, the leader's raw reading, leader-follow's message) per
    control tick."""
    ticks = []

    def on_tick(record):
        reading = stack.leader.read()
        ticks.append((record.timestamp, record.mode, record.commanded, np.array(record.state, dtype=np.float64),
                      None if reading is None else reading.position.copy(), stack.leader_follow.message))
    stack.controller.add_tick_listener(on_tick)
    return ticks


def test_the_rig_wires_leaders_and_the_console_offers_leader_follow(stack):
    import httpx
    if stack.config.robot == "sim":
        assert stack.robot is not None and stack.hardware_arm is None
    else:
        assert stack.robot is None and stack.hardware_arm.is_connected and len(stack.hardware_arm.simulated) == 2
    assert stack.leader.is_connected and stack.leader.sources == ["master", "master"]
    assert len(stack.leader.simulated) == 2 and stack.leader_follow.arm is stack.arm
    config = httpx.get(f"{stack.url}/config", timeout=30).json()
    buttons = [c["props"].get("value") for c in config["components"]
               if c.get("props", {}).get("elem_id") == "ewam-leader-follow"]
    assert buttons == ["Leader-follow"]
    assert stack.check() is None


def test_refuses_to_start_while_the_leaders_disagree(stack):
    stack.controller.stop()
    time.sleep(0.3)                                     # the STOP's hold has gone out
    (joints, gripper), right_pose = follower_pose(stack)
    left, right = stack.leader.simulated
    off = list(joints)
    off[1] += 20.0                                      # the left leader's joint2 is 20 deg from the follower's
    left.play(lambda t: (off, gripper))
    right.play(lambda t: right_pose)
    time.sleep(0.3)
    before = stack.arm.read_state().position.copy()
    ticks = record_ticks(stack)
    name = "left_shoulder \\(leader left_joint2\\)" if stack.hardware_arm is None else "left_joint2"
    with pytest.raises(gr.Error, match=rf"cannot start leader-follow: leader and follower disagree: {name} "
                                       r"off by 0\.349 rad \(20\.0 deg"):
        stack.console.leader_follow_mode(stack.operator)
    assert stack.controller.status().mode == Mode.IDLE and stack.leader_follow.state == FollowState.IDLE
    time.sleep(0.5)
    assert ticks and not any(commanded for _, _, commanded, *_ in ticks)
    np.testing.assert_allclose(stack.arm.read_state().position, before, atol=0.01)   # the follower did not move


def follow_hands(stack, seconds: float = 4.0) -> list:
    """Leaders put in the follower's pose, leader-follow started, then both hands swing for `seconds`:
    the control ticks of the swing (record_ticks)."""
    stack.controller.stop()
    time.sleep(0.3)
    poses = follower_pose(stack)
    left, right = stack.leader.simulated
    for fw, pose in zip((left, right), poses):          # the operator puts the leaders in the follower's pose
        fw.play(lambda t, pose=pose: pose)
    time.sleep(0.3)
    stack.console.leader_follow_mode(stack.operator)
    assert stack.controller.status().mode == Mode.TELEOP and stack.leader_follow.state == FollowState.FOLLOWING
    ticks = record_ticks(stack)
    left.play(hand(*poses[0]))
    right.play(hand(*poses[1], phase=1.0))
    time.sleep(seconds)
    return list(ticks)


def test_the_follower_tracks_the_leaders_at_the_control_rate(stack):
    run = follow_hands(stack)
    # A reader thread starved on 2 busy cores (a full suite) can leave a reading stale for a few ticks: the
    # follower then holds, rightly, and stays held while the leader it lost has moved on (the re-sync rule;
    # the unplugged leader below checks the hold). That is a run with nothing to measure: try once more.
    if any(str(message).startswith("leader stale") for *_, message in run):
        run = follow_hands(stack)
    left, _ = stack.leader.simulated
    spec = stack.arm.spec
    scale, offset = stack.rig.leader.follow.joint_map(spec.action_dim)
    arm_joints = [i for i in range(spec.action_dim) if i not in spec.gripper_indices]
    following = [mode == Mode.TELEOP and commanded for _, mode, commanded, *_ in run]
    errors = np.array([np.max(np.abs(offset + scale * leader - state)[arm_joints])
                       for ok, (*_, state, leader, _) in zip(following, run) if ok])
    stamps = np.array([stamp for stamp, *_ in run])
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    print(f"\nstack, Piper leaders -> {stack.config.robot} follower: {rate:.2f} Hz over {len(run)} ticks, tracking "
          f"error max {errors.max():.4f} rad, mean {errors.mean():.4f} rad; {stack.arm.events.clipped} clipped")
    assert sum(following) >= WITHIN * len(following), [message for ok, (*_, message) in zip(following, run) if not ok]
    assert rate >= MIN_RATE_HZ
    assert np.mean(errors < MAX_ERROR_RAD) >= WITHIN and errors.mean() < MEAN_ERROR_RAD, errors.round(3)
    moved = np.ptp(np.array([state for *_, state, _, _ in run]), axis=0)
    assert moved[arm_joints].max() > 0.25               # it followed a real motion (0.3 rad swings)
    assert stack.arm.events.rejected == 0

    left.unplug()                                       # dead-man: a leader goes quiet -> the follower holds
    try:
        # The follower may already hold for another reason (a late tick at the end of the swing, then the
        # re-sync rule): what matters is that the next ticks name the stale leader and keep holding.
        wait_for(lambda: stack.leader_follow.state == FollowState.HOLDING
                 and "leader stale" in stack.controller.status().notice, 4.0,
                 "the stale leader to hold the follower")
        assert stack.arm.holding
    finally:
        left.replug()                                   # the next test needs the leader back, pass or fail
    stack.console.stop(stack.operator)                  # STOP ends leader-follow
    assert stack.controller.status().mode == Mode.IDLE and stack.leader_follow.state == FollowState.IDLE


def test_the_console_page_refuses_then_starts_leader_follow(stack):
    """The operator's page (headless chromium): the Leader-follow button shows the refusal while a leader
    disagrees, and starts mirroring once the leaders are put in the follower's pose."""
    if stack.config.robot != "sim":
        pytest.skip("the page is the same for both rigs: checked once, on the sim follower")
    from app.tools.harness import chromium_page
    stack.controller.stop()
    time.sleep(0.3)
    (joints, gripper), right_pose = follower_pose(stack)
    left, right = stack.leader.simulated
    off = list(joints)
    off[0] += 20.0                                      # the left leader's waist is 20 deg off
    left.play(lambda t: (off, gripper))
    right.play(lambda t: right_pose)
    with chromium_page() as page:
        page.goto(stack.url)
        page.wait_for_selector("#ewam-status .status-bar", timeout=120_000)
        page.click("text=Take control")
        page.click("#ewam-leader-follow")
        page.wait_for_selector("text=cannot start leader-follow", timeout=30_000)
        assert "left_waist (leader left_joint1) off by 0.349 rad" in page.inner_text("body")
        assert stack.controller.status().mode == Mode.IDLE
        left.play(lambda t: (joints, gripper))          # the operator moves the leader onto the follower's pose
        time.sleep(0.3)
        page.click("#ewam-leader-follow")
        wait_for(lambda: stack.leader_follow.state == FollowState.FOLLOWING, 30, "leader-follow from the page")
        assert stack.controller.status().mode == Mode.TELEOP
        page.click("#ewam-stop")
        wait_for(lambda: stack.controller.status().mode == Mode.IDLE, 10, "STOP from the page")
        assert stack.leader_follow.state == FollowState.IDLE
