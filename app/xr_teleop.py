"""WebXR teleop: a VR headset's controllers (Quest Browser, or any WebXR browser) drive the arms'
end effectors; IK runs here, in the console process.

Page side (app/static/webxr.js): "Enter VR" starts an immersive session; each XR frame reads every
tracked controller's grip pose (the session's 'local' reference space), its squeeze (grip) and
trigger values, and sends them to the server function `xr_pose` - latest wins: one request in
flight, a newer frame replaces any unsent one, so a slow reply never queues stale poses. In the
headset a world-fixed quad shows the live head camera (the frames the head tile already pulls).

Server side (this module): `parse_poses` checks a message (clear ValueError otherwise; the console
answers it and ignores the message). `Clutch` maps one controller to one end-effector pose:
pressing grip anchors the controller pose and the arm's measured EE pose; while grip is held the
controller's displacement since the press (turned into the robot frame, times `scale`) moves the
target from that anchor, clamped to the workspace box; orientation follows the controller's
rotation since the press. Releasing grip freezes the arm's target (re-centre, then grip again).
`XRTeleop.step` turns a message into one 14-d joint target (IK per engaged arm, trigger -> gripper,
arms not gripped keep their frozen target) that the console sends as an ordinary dead-man teleop
command (Controller.teleop_command -> DeadManTeleop -> SafeArm), through the same gate as the jog
keys. No grip held = no command = the dead-man lets go and the arm holds.

Threads and invariants: Gradio runs server functions on its thread pool, so one lock guards the
clutch state and the IK (ArmIK's scratch MjData is not thread-safe); the console holds `serial`
from accept() to the command it sends. A message whose seq is not newer than the last one accepted
is dropped (latest wins even if two requests race). A gap in the stream longer than
`regrip_after_s` (a frozen tab, the headset taken off) re-anchors every held clutch from the
current poses, so the arm does not chase a hand that moved meanwhile; shorter gaps (a slow
network) keep the mapping: the arm holds (dead-man) and then resumes toward the hand.
Kinematics: the sim's MJCF (hardware/sim/ik.py) for the sim robot; another arm needs its own model
(for_robot says so, the panel shows why).
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from app.static_files import script
from app.teleop import ArmGroup, arm_groups
from hardware.arm import RobotSpec

HANDS = ("left", "right")


@dataclass
class XRTeleopConfig:
    scale: float = 1.0                    # EE metres per controller metre
    # Rows: robot-frame axes in XR 'local' space (x right, y up, -z forward). The default stands
    # the operator behind the sim robot facing the way it faces (+y): robot = (x, -z, y).
    xr_to_robot: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))
    workspace_min: tuple[float, float, float] = (-0.55, -0.05, 0.01)   # robot frame, metres (table top z=0)
    workspace_max: tuple[float, float, float] = (0.55, 0.60, 0.45)
    grip_threshold: float = 0.5           # squeeze value that engages the clutch
    follow_orientation: bool = True       # False: the EE keeps its orientation from the press
    reach_tolerance_m: float = 0.01       # IK residual above this is reported as out of reach
    regrip_after_s: float = 3.0           # a stream gap longer than this (a stalled page) re-anchors clutches

    def __post_init__(self):
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"XRTeleopConfig.scale must be a positive number, got {self.scale}")
        m = np.asarray(self.xr_to_robot, dtype=np.float64)
        if m.shape != (3, 3) or not np.allclose(m @ m.T, np.eye(3), atol=1e-6) or np.linalg.det(m) < 0:
            raise ValueError("XRTeleopConfig.xr_to_robot must be a 3x3 rotation (orthonormal rows, det +1)")
        if np.any(np.asarray(self.workspace_min) >= np.asarray(self.workspace_max)):
            raise ValueError(f"XRTeleopConfig.workspace_min {self.workspace_min} must be below workspace_max "
                             f"{self.workspace_max} on every axis")


@dataclass(frozen=True)
class HandPose:
    position: np.ndarray                  # (3,) metres, XR local space
    rotation: np.ndarray                  # (3, 3), XR local space
    grip: float                           # squeeze 0..1
    trigger: float                        # 0..1


@dataclass(frozen=True)
class XRPoses:
    seq: int
    hands: dict[str, HandPose]            # handedness -> pose; a hand not tracked is absent


def quat_to_matrix(q) -> np.ndarray:
    """(x, y, z, w) unit quaternion (WebXR's order) -> 3x3 rotation."""
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _numbers(value, n: int, what: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise ValueError(f"{what} must be a list of {n} numbers, got {str(value)[:60]}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{what} must hold numbers only, got {str(value)[:60]}")
    out = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{what} contains NaN/inf: the headset lost tracking; the arm holds")
    return out


def _unit(value, what: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number 0..1, got {value!r:.40}")
    if not -1e-3 <= value <= 1 + 1e-3:
        raise ValueError(f"{what} must be 0..1 (a WebXR button value), got {value}")
    return float(min(max(value, 0.0), 1.0))


def parse_poses(message) -> XRPoses:
    """The page's message -> XRPoses; ValueError naming the problem (the caller ignores the message).

    {"seq": int, "hands": {"left"|"right": {"position": [x, y, z], "orientation": [x, y, z, w],
    "grip": 0..1, "trigger": 0..1}}}
    """
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except json.JSONDecodeError as exc:
            raise ValueError(f"XR pose message is not JSON ({exc}); reload the page") from None
    if not isinstance(message, Mapping):
        raise ValueError(f"XR pose message must be an object with seq and hands, got {type(message).__name__}")
    seq = message.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError(f"XR pose message needs a non-negative integer seq, got {seq!r:.40}")
    hands = message.get("hands")
    if not isinstance(hands, Mapping):
        raise ValueError("XR pose message needs hands: {\"left\"/\"right\": {position, orientation, grip, trigger}}")
    out: dict[str, HandPose] = {}
    for name, hand in hands.items():
        if name not in HANDS:
            raise ValueError(f"XR pose message has hand {name!r:.20}; use \"left\" or \"right\"")
        if hand is None:
            continue
        if not isinstance(hand, Mapping):
            raise ValueError(f"XR hand {name} must be an object with position, orientation, grip, trigger")
        position = _numbers(hand.get("position"), 3, f"{name} position")
        quat = _numbers(hand.get("orientation"), 4, f"{name} orientation")
        norm = float(np.linalg.norm(quat))
        if not 0.9 < norm < 1.1:
            raise ValueError(f"{name} orientation is not a unit quaternion (norm {norm:.3f}); send XRRigidTransform"
                             ".orientation as [x, y, z, w]")
        if float(np.max(np.abs(position))) > 20.0:
            raise ValueError(f"{name} position {position.round(2).tolist()} is more than 20 m away: tracking glitch")
        out[name] = HandPose(position, quat_to_matrix(quat / norm), _unit(hand.get("grip"), f"{name} grip"),
                             _unit(hand.get("trigger"), f"{name} trigger"))
    return XRPoses(seq, out)


class Clutch:
    """One controller -> one end-effector pose target (see the module docstring). Pure: no IK."""

    def __init__(self, config: XRTeleopConfig):
        self.config = config
        self._m = np.asarray(config.xr_to_robot, dtype=np.float64)
        self._lo = np.asarray(config.workspace_min, dtype=np.float64)
        self._hi = np.asarray(config.workspace_max, dtype=np.float64)
        self._anchor: tuple[HandPose, np.ndarray, np.ndarray] | None = None   # hand, EE pos, EE rot at press

    @property
    def engaged(self) -> bool:
        return self._anchor is not None

    def release(self) -> None:
        self._anchor = None

    def update(self, hand: HandPose | None, ee_now: Callable[[], tuple[np.ndarray, np.ndarray]]
               ) -> tuple[np.ndarray, np.ndarray] | None:
        """This frame's (position, rotation) target in the robot frame, or None (grip not held,
        or the controller not tracked: the arm's target stays frozen). ee_now() gives the
        measured EE pose, read only when the grip is pressed."""
        if hand is None or hand.grip < self.config.grip_threshold:
            self._anchor = None
            return None
        if self._anchor is None:
            pos, rot = ee_now()
            self._anchor = (hand, np.asarray(pos, np.float64), np.asarray(rot, np.float64))
        start, ee_pos, ee_rot = self._anchor
        delta = self._m @ (hand.position - start.position) * self.config.scale
        target_pos = np.clip(ee_pos + delta, self._lo, self._hi)
        if self.config.follow_orientation:
            turn = self._m @ (hand.rotation @ start.rotation.T) @ self._m.T
            target_rot = turn @ ee_rot
        else:
            target_rot = ee_rot.copy()
        return target_pos, target_rot


class ArmKinematics(Protocol):
    """hardware.sim.ik.ArmIK's interface: one arm's 6 joints <-> its tool point."""

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def solve(self, q_init: np.ndarray, pos: np.ndarray, rot: np.ndarray) -> np.ndarray: ...


@dataclass
class XRStep:
    target: np.ndarray | None             # full joint target to send, or None: nothing held
    engaged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)     # out of reach, clamped...
    stale: bool = False                   # an older message than one already accepted: dropped


class XRTeleop:
    """Clutch state and IK for one console. Controller-free: the console sends what step() returns."""

    def __init__(self, spec: RobotSpec, kinematics: Mapping[str, ArmKinematics] | None,
                 config: XRTeleopConfig | None = None, why_not: str = ""):
        self.spec = spec
        self.config = config or XRTeleopConfig()
        self.kinematics = dict(kinematics or {})
        groups = {g.name: g for g in arm_groups(spec)}
        # controller hand -> (arm group, its kinematics); a one-arm robot is driven by the right hand
        self.arms: dict[str, ArmGroup] = {}
        for hand in HANDS:
            group = groups.get(hand) or (next(iter(groups.values())) if len(groups) == 1 and hand == "right"
                                         else None)
            if group is not None and group.name in self.kinematics and len(group.joints) == 6:
                self.arms[hand] = group
        self.why_not = why_not or ("" if self.arms else
                                   f"no kinematic model for robot '{spec.name}': WebXR teleop needs one per arm")
        self._lock = threading.Lock()
        # The console holds `serial` from accept() to the command it sends, so two racing
        # requests can never send an older frame after a newer one.
        self.serial = threading.Lock()
        self._clutch = {hand: Clutch(self.config) for hand in self.arms}
        self._session = ""
        self._last_seq = -1
        self._last_time = -math.inf
        self._frozen: np.ndarray | None = None          # the full target while any clutch is held
        self._seed: dict[str, np.ndarray] = {}          # last IK solution per engaged hand

    @classmethod
    def for_robot(cls, spec: RobotSpec, config: XRTeleopConfig | None = None) -> "XRTeleop":
        """The sim robot: IK on the sim's own MJCF. Other robots: disabled, with the reason."""
        from hardware.sim.env import ALOHA_SPEC
        if spec.name != ALOHA_SPEC.name:
            return cls(spec, None, config, why_not=f"WebXR teleop has no kinematic model for '{spec.name}' yet "
                                                   "(only the sim robot's MJCF): use the jog keys or a leader arm")
        import mujoco

        from hardware.sim.env import SCENE_XML
        from hardware.sim.ik import ArmIK
        model = mujoco.MjModel.from_xml_path(str(SCENE_XML))
        return cls(spec, {side: ArmIK(model, side) for side in ("left", "right")}, config)

    @property
    def available(self) -> bool:
        return bool(self.arms)

    def reset(self) -> None:
        """Forget every clutch (a refused command, STOP, another operator): the next grip re-anchors."""
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        for clutch in self._clutch.values():
            clutch.release()
        self._frozen = None
        self._seed.clear()

    def wants_motion(self, poses: XRPoses) -> bool:
        return any(h in self.arms and p.grip >= self.config.grip_threshold for h, p in poses.hands.items())

    def accept(self, session: str, poses: XRPoses, now: float | None = None) -> bool:
        """Latest wins: False for a message not newer than one already taken from this session."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if session != self._session:
                self._session, self._last_seq = session, -1
                self._reset_locked()
            if poses.seq <= self._last_seq:
                return False
            self._last_seq = poses.seq
            if now - self._last_time > self.config.regrip_after_s:
                self._reset_locked()              # a stalled stream: re-anchor instead of jumping
            self._last_time = now
            return True

    def step(self, poses: XRPoses, measured: np.ndarray) -> XRStep:
        """One accepted message -> the joint target (IK per engaged arm, trigger -> gripper)."""
        measured = np.asarray(measured, dtype=np.float64)
        with self._lock:
            result = XRStep(None)
            base = self._frozen if self._frozen is not None else measured.copy()
            target = base.copy()
            for hand, group in self.arms.items():
                joints = list(group.joints)
                ik = self.kinematics[group.name]
                pose = self._clutch[hand].update(poses.hands.get(hand), lambda: ik.forward(measured[joints]))
                if pose is None:
                    self._seed.pop(hand, None)
                    continue
                seed = self._seed.get(hand, measured[joints])
                q = ik.solve(seed, pose[0], pose[1])
                self._seed[hand] = q
                target[joints] = q
                reached, _ = ik.forward(q)
                miss = float(np.linalg.norm(reached - pose[0]))
                if miss > self.config.reach_tolerance_m:
                    result.notes.append(f"{hand} target out of reach by {miss * 100:.1f} cm")
                if group.gripper is not None:
                    target[group.gripper] = 1.0 - poses.hands[hand].trigger     # trigger pulled = closed (0)
                result.engaged.append(hand)
            if result.engaged:
                self._frozen = target
                result.target = target.copy()
            else:
                self._frozen = None
            return result


def page_config(xr: XRTeleop, head_camera: str) -> str:
    return json.dumps({"available": xr.available, "why_not": xr.why_not, "hands": sorted(xr.arms),
                       "head_camera": head_camera, "grip_threshold": xr.config.grip_threshold})


PANEL_HTML = """<div class="xr-teleop">
  <button class="xr-enter" disabled>Enter VR</button>
  <span class="xr-msg">checking for WebXR…</span>
  <div class="xr-help">In the headset: hold grip (squeeze) to move that arm's gripper with your hand; let go to
  re-centre (the arm holds); pull the trigger to close the gripper. Left controller = left arm, right = right arm.
  The head camera is shown in front of you.</div>
  <span class="xr-stats"></span>
</div>"""

# The page script. `server.xr_pose(session, message)` is the panel's server function.
WEBXR_JS = script("webxr.js")
