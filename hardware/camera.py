"""The Camera interface: every camera adapter (sim, RealSense, OpenCV, replay) implements it.

A camera delivers its newest frame on demand (`read_latest`); adapters capture in a
background thread so that the control loop never waits on a device.
"""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field

import numpy as np


class CameraError(RuntimeError):
    """Base class for camera failures; the message says what happened and what to do."""


class CameraNotFoundError(CameraError):
    """No device matches the configuration (wrong serial, unplugged, no permission)."""


class CameraDisconnectedError(CameraError):
    """The device was connected and is gone now (cable pulled, USB reset)."""


class StaleFrameError(CameraError):
    """The newest frame is older than the allowed age: the stream has stalled."""


@dataclass
class CameraConfig:
    name: str                      # role in the rig: "head", "left_wrist", "right_wrist"
    adapter: str = "sim"           # "sim", "realsense", "opencv", "replay"
    width: int = 320
    height: int = 240
    fps: int = 30
    use_depth: bool = False
    serial: str | None = None      # RealSense serial number / OpenCV device index or path
    source: str | None = None      # replay: episode directory or video file
    max_age_s: float = 0.5         # read_latest raises StaleFrameError past this age
    options: dict = field(default_factory=dict)


@dataclass
class Frame:
    rgb: np.ndarray                # HxWx3 uint8, RGB order
    timestamp: float               # capture time, time.monotonic() seconds
    seq: int                       # increases by one per captured frame
    depth: np.ndarray | None = None  # HxW uint16 millimetres, aligned to rgb

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.timestamp


class Camera(abc.ABC):
    """A connected source of RGB (and optionally depth) frames."""

    def __init__(self, config: CameraConfig):
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def resolution(self) -> tuple[int, int]:
        """(width, height) of the frames this camera delivers."""
        return self.config.width, self.config.height

    @property
    def fps(self) -> int:
        return self.config.fps

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device and start capturing; raises CameraNotFoundError."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Stop capturing and release the device; safe to call twice."""

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def latest(self) -> Frame | None:
        """The newest frame captured so far, or None before the first one."""

    def read_latest(self, max_age_s: float | None = None) -> Frame:
        """The newest frame; raises if there is none, it is stale, or the device is gone."""
        if not self.is_connected:
            raise CameraDisconnectedError(
                f"camera '{self.name}' is not connected: call connect() first or check the cable")
        frame = self.latest()
        if frame is None:
            raise StaleFrameError(f"camera '{self.name}' has not delivered a frame yet")
        limit = self.config.max_age_s if max_age_s is None else max_age_s
        if frame.age_s > limit:
            raise StaleFrameError(
                f"camera '{self.name}': newest frame is {frame.age_s * 1000:.0f} ms old "
                f"(limit {limit * 1000:.0f} ms); the stream has stalled")
        return frame

    def __enter__(self) -> "Camera":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()
