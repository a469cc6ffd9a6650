"""Build cameras, arms and leader arms from their configs, and read a rig file (cameras + arm +
safety + an optional leader) into configs.

A rig file is TOML (or JSON with the same structure):

    [arm]
    adapter = "sim"

    [safety]
    watchdog_s = 0.2

    [[cameras]]
    name = "head"
    adapter = "realsense"
    serial = "817612070123"
    width = 640
    height = 480
    use_depth = true
    options = { wait_ms = 200 }

    [leader]                      # optional: leader arms for leader-follower teleop
    adapter = "piper"
    port = "can_leader_left,can_leader_right"
    options = { source = "auto" }

    [leader.follow]               # hardware.leader.LeaderFollowConfig
    align_tolerance_rad = 0.1
    stale_s = 0.1

The follower is [arm] (its adapter, or "sim": the embedded simulation follows a real leader);
app.stack connects the leader and offers leader-follow mode in the console. Shipped rigs:
assets/rigs/piper_leader_sim.toml (leader = Piper over CAN, follower = sim) and
assets/rigs/piper_leader_piper.toml (leader = Piper, follower = Piper; `--robot piper`).
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import Callable

from hardware.arm import Arm, ArmConfig
from hardware.config_dict import config_from_dict, unknown_name
from hardware.camera import Camera, CameraConfig
from hardware.leader import LeaderArm, LeaderConfig, LeaderFollowConfig
from hardware.safety import SafetyConfig


def _realsense(config: CameraConfig) -> Camera:
    from hardware.realsense import RealSenseCamera
    return RealSenseCamera(config)


def _opencv(config: CameraConfig) -> Camera:
    from hardware.opencv_camera import OpenCVCamera
    return OpenCVCamera(config)


def _replay(config: CameraConfig) -> Camera:
    from hardware.replay_camera import ReplayCamera
    return ReplayCamera(config)


# Imported lazily so that a rig without RealSense cameras never loads librealsense.
CAMERA_ADAPTERS: dict[str, Callable[[CameraConfig], Camera]] = {
    "realsense": _realsense,
    "opencv": _opencv,
    "replay": _replay,
}
SIM_ADAPTER = "sim"


def make_camera(config: CameraConfig) -> Camera:
    """The Camera for config.adapter; sim cameras belong to the simulated robot instead."""
    if config.adapter == SIM_ADAPTER:
        raise ValueError(
            f"camera '{config.name}' uses the 'sim' adapter: sim cameras render the simulated scene, so "
            "they come from the simulated robot (hardware.sim.robot.SimRobot, its cameras by name), "
            "not from make_camera; use make_cameras(configs, sim_cameras=robot.cameras)")
    factory = CAMERA_ADAPTERS.get(config.adapter)
    if factory is None:
        raise ValueError(f"camera '{config.name}': " +
                         unknown_name("camera adapter", config.adapter, sorted(CAMERA_ADAPTERS) + [SIM_ADAPTER]))
    return factory(config)


def make_cameras(configs: list[CameraConfig], sim_cameras: dict[str, Camera] | None = None) -> dict[str, Camera]:
    """Cameras by name; 'sim' entries are taken from sim_cameras (the simulated robot's)."""
    cameras: dict[str, Camera] = {}
    for config in configs:
        if config.adapter == SIM_ADAPTER and sim_cameras is not None:
            if config.name not in sim_cameras:
                raise ValueError(f"sim camera '{config.name}' does not exist; the simulation has "
                                 f"{sorted(sim_cameras)}")
            cameras[config.name] = sim_cameras[config.name]
        else:
            cameras[config.name] = make_camera(config)
    return cameras


def _piper(config: ArmConfig) -> Arm:
    from hardware.piper import PiperArm, PiperConfig
    return PiperArm(PiperConfig.from_arm_config(config))


# Real arms; imported lazily so that a rig without a Piper never needs piper-sdk.
ARM_ADAPTERS: dict[str, Callable[[ArmConfig], Arm]] = {
    "piper": _piper,
}


def make_arm(config: ArmConfig) -> Arm:
    """The (not yet connected) Arm for config.adapter; the sim arm belongs to the simulated robot."""
    if config.adapter == SIM_ADAPTER:
        raise ValueError("the 'sim' arm is the simulated robot's (hardware.sim.robot.SimRobot(...).arm), "
                         "not built by make_arm; run with --robot sim")
    factory = ARM_ADAPTERS.get(config.adapter)
    if factory is None:
        raise ValueError("[arm] " + unknown_name("arm adapter", config.adapter, sorted(ARM_ADAPTERS) + [SIM_ADAPTER]))
    return factory(config)


def _piper_leader(config: LeaderConfig) -> LeaderArm:
    from hardware.piper_leader import PiperLeader, PiperLeaderConfig
    return PiperLeader(PiperLeaderConfig.from_leader_config(config))


# Leader arms (read, never commanded); imported lazily like the arms.
LEADER_ADAPTERS: dict[str, Callable[[LeaderConfig], LeaderArm]] = {
    "piper": _piper_leader,
}


def make_leader(config: LeaderConfig) -> LeaderArm:
    """The (not yet connected) LeaderArm for config.adapter."""
    factory = LEADER_ADAPTERS.get(config.adapter)
    if factory is None:
        raise ValueError("[leader] " + unknown_name("leader adapter", config.adapter, sorted(LEADER_ADAPTERS)))
    return factory(config)


@dataclass
class RigConfig:
    """Everything hardware-side a session needs: cameras, the arm adapter, the safety settings, and
    the leader arms that can drive the arm (None: no leader-follower teleop)."""
    cameras: list[CameraConfig] = field(default_factory=list)
    arm: ArmConfig = field(default_factory=ArmConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    leader: LeaderConfig | None = None


def leader_from_dict(data: dict, where: str) -> LeaderConfig:
    """The [leader] table; its [leader.follow] sub-table is a LeaderFollowConfig."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: [leader] must be a table of settings, got {type(data).__name__}")
    data = dict(data)
    follow = data.pop("follow", {})
    config = config_from_dict(LeaderConfig, data, f"{where}: [leader]")
    if config.adapter not in LEADER_ADAPTERS:
        raise ValueError(f"{where}: [leader] " + unknown_name("leader adapter", config.adapter,
                                                              sorted(LEADER_ADAPTERS)))
    if not isinstance(follow, dict):
        raise ValueError(f"{where}: [leader.follow] must be a table of settings, got {type(follow).__name__}")
    follow = {k: tuple(v) if k in ("scale", "offset") and isinstance(v, list) else v for k, v in follow.items()}
    try:
        config.follow = config_from_dict(LeaderFollowConfig, follow, f"{where}: [leader.follow]")
    except ValueError as e:
        raise ValueError(str(e) if str(e).startswith(where) else f"{where}: [leader.follow]: {e}") from None
    return config


def _piper_can_interfaces(port: str | None, options: dict, defaults: tuple[str, str]) -> set[str]:
    if port:
        return {p.strip() for p in str(port).split(",") if p.strip()}
    return {str(options.get("left_can", defaults[0])), str(options.get("right_can", defaults[1]))}


def check_leader_buses(arm: ArmConfig, leader: LeaderConfig, where: str) -> None:
    """Piper leaders and Piper followers on one CAN interface: the follower would obey the leader's
    frames in firmware, past every check of hardware.safety. Refuse such a rig."""
    if arm.adapter != "piper" or leader.adapter != "piper":
        return
    shared = (_piper_can_interfaces(arm.port, arm.options, ("can_left", "can_right"))
              & _piper_can_interfaces(leader.port, leader.options, ("can_leader_left", "can_leader_right")))
    if shared:
        raise ValueError(f"{where}: [arm] and [leader] share CAN interface(s) {', '.join(sorted(shared))}: give "
                         "every leader and every follower arm its own USB-CAN adapter (a follower on a leader's "
                         "bus follows it in firmware, past the safety checks)")


def rig_from_dict(data: dict, where: str = "rig") -> RigConfig:
    sections = ["arm", "cameras", "leader", "safety"]
    for key in data:
        if key not in sections:
            raise ValueError(f"{where}: " + unknown_name("section", key, sections))
    cameras_data = data.get("cameras", [])
    if not isinstance(cameras_data, list):
        raise ValueError(f"{where}: 'cameras' must be a list ([[cameras]] in TOML)")
    cameras = []
    for i, entry in enumerate(cameras_data):
        label = f"{where}: cameras[{i}]" + (f" ('{entry['name']}')" if isinstance(entry, dict) and "name" in entry else "")
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"{label} needs a name (the camera's role, e.g. \"head\")")
        camera = config_from_dict(CameraConfig, entry, label)
        if camera.adapter != SIM_ADAPTER and camera.adapter not in CAMERA_ADAPTERS:
            raise ValueError(f"{label}: " + unknown_name(
                "camera adapter", camera.adapter, sorted(CAMERA_ADAPTERS) + [SIM_ADAPTER]))
        if camera.serial is not None:
            camera.serial = str(camera.serial)   # TOML reads an unquoted serial as a number
        cameras.append(camera)
    names = [c.name for c in cameras]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{where}: camera names must be unique; repeated: {duplicates}")
    safety_data = dict(data.get("safety", {}))
    if safety_data.get("max_step") is not None:
        safety_data["max_step"] = tuple(safety_data["max_step"])
    leader = leader_from_dict(data["leader"], where) if "leader" in data else None
    arm = config_from_dict(ArmConfig, data.get("arm", {}), f"{where}: [arm]")
    if leader is not None:
        check_leader_buses(arm, leader, where)
    safety = config_from_dict(SafetyConfig, safety_data, f"{where}: [safety]")
    return RigConfig(cameras=cameras, arm=arm, safety=safety, leader=leader)


def load_rig(path: str) -> RigConfig:
    """Read a .toml or .json rig file into configs; errors name the file and the bad setting."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"rig file {path} does not exist")
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".toml":
            with open(path, "rb") as f:
                data = tomllib.load(f)
        elif suffix == ".json":
            with open(path) as f:
                data = json.load(f)
        else:
            raise ValueError(f"rig file {path}: use a .toml or .json file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"rig file {path} is not valid {suffix[1:].upper()}: {e}") from None
    return rig_from_dict(data, where=f"rig file {path}")
