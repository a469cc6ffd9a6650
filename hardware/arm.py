"""The Arm interface: a robot (one or two arms) commanded by joint-position targets.

Commands reach an Arm only through hardware.safety.SafeArm; adapters implement the
vendor protocol and nothing else.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np


class ArmError(RuntimeError):
    """Base class for arm failures; the message says what happened and what to do."""


class ArmNotConnectedError(ArmError):
    pass


@dataclass(frozen=True)
class RobotSpec:
    """What the rest of the system needs to know about a robot."""
    name: str
    joint_names: tuple[str, ...]          # one per action dimension, in action order
    lower: tuple[float, ...]              # joint limits (rad; grippers 0..1)
    upper: tuple[float, ...]
    home: tuple[float, ...]               # a safe pose to start from and return to
    gripper_indices: tuple[int, ...] = ()  # action dims that are grippers (normalised 0..1)
    control_hz: float = 10.0
    max_step: tuple[float, ...] | None = None  # per-tick change cap (rad / gripper units)

    @property
    def action_dim(self) -> int:
        return len(self.joint_names)

    def __post_init__(self):
        n = len(self.joint_names)
        for field_name in ("lower", "upper", "home"):
            if len(getattr(self, field_name)) != n:
                raise ValueError(f"RobotSpec '{self.name}': {field_name} has "
                                 f"{len(getattr(self, field_name))} entries, expected {n}")
        if self.max_step is not None and len(self.max_step) != n:
            raise ValueError(f"RobotSpec '{self.name}': max_step has {len(self.max_step)} entries, expected {n}")

    def to_dict(self) -> dict:
        return {"name": self.name, "joint_names": list(self.joint_names), "lower": list(self.lower),
                "upper": list(self.upper), "home": list(self.home),
                "gripper_indices": list(self.gripper_indices), "control_hz": self.control_hz,
                "max_step": None if self.max_step is None else list(self.max_step)}

    @classmethod
    def from_dict(cls, d: dict) -> "RobotSpec":
        return cls(name=d["name"], joint_names=tuple(d["joint_names"]), lower=tuple(d["lower"]),
                   upper=tuple(d["upper"]), home=tuple(d["home"]),
                   gripper_indices=tuple(d.get("gripper_indices", ())),
                   control_hz=float(d.get("control_hz", 10.0)),
                   max_step=None if d.get("max_step") is None else tuple(d["max_step"]))


@dataclass
class ArmState:
    position: np.ndarray                  # measured joint positions, float32 (action_dim,)
    timestamp: float                      # time.monotonic() of the reading
    target: np.ndarray | None = None      # last commanded target, if any


@dataclass
class ArmConfig:
    adapter: str = "sim"                  # "sim", "piper", ...
    port: str | None = None               # CAN interface / serial port for real arms
    options: dict = field(default_factory=dict)


class Arm(abc.ABC):
    spec: RobotSpec

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the arm, leaving it safe: holding position (never dropping under gravity)."""

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def read_state(self) -> ArmState: ...

    @abc.abstractmethod
    def command(self, target: np.ndarray) -> None:
        """Send joint-position targets (already checked by the safety layer)."""

    def hold(self) -> None:
        """Hold the current measured position."""
        self.command(self.read_state().position)

    def __enter__(self) -> "Arm":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()
