"""The Camera interface (read_latest's errors) and ThreadedCamera (thread, seq, reconnects)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hardware.camera import (Camera, CameraConfig, CameraDisconnectedError, CameraError, CameraNotFoundError,
                             Frame, StaleFrameError)
from hardware.threaded_camera import ThreadedCamera


class StillCamera(Camera):
    """The smallest Camera: frames are set by hand."""

    def __init__(self, config: CameraConfig):
        super().__init__(config)
        self.connected = False
        self.frame: Frame | None = None

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    @property
    def is_connected(self) -> bool:
        return self.connected

    def latest(self) -> Frame | None:
        return self.frame


def _frame(age_s: float = 0.0, seq: int = 0) -> Frame:
    return Frame(rgb=np.zeros((240, 320, 3), np.uint8), timestamp=time.monotonic() - age_s, seq=seq)


def test_read_latest_errors_say_what_is_wrong():
    camera = StillCamera(CameraConfig(name="head", max_age_s=0.5))
    with pytest.raises(CameraDisconnectedError, match="'head' is not connected: call connect"):
        camera.read_latest()
    with camera:
        with pytest.raises(StaleFrameError, match="not delivered a frame yet"):
            camera.read_latest()
        camera.frame = _frame(age_s=0.1)
        assert camera.read_latest() is camera.frame
        camera.frame = _frame(age_s=0.8)
        with pytest.raises(StaleFrameError, match=r"limit 500 ms"):
            camera.read_latest()
        assert camera.read_latest(max_age_s=1.0) is camera.frame   # per-call limit overrides
    assert not camera.is_connected


def test_properties_and_error_hierarchy():
    camera = StillCamera(CameraConfig(name="left_wrist", width=160, height=120, fps=15))
    assert (camera.name, camera.resolution, camera.fps) == ("left_wrist", (160, 120), 15)
    for error in (CameraNotFoundError, CameraDisconnectedError, StaleFrameError):
        assert issubclass(error, CameraError) and issubclass(error, RuntimeError)
    assert _frame(age_s=0.25).age_s == pytest.approx(0.25, abs=0.05)


class CountingCamera(ThreadedCamera):
    """Produces numbered frames at ~200 Hz; `unplugged` makes the device vanish."""

    def __init__(self, config: CameraConfig, deliver: bool = True):
        super().__init__(config)
        self.deliver = deliver
        self.unplugged = threading.Event()
        self.opens = self.closes = 0
        self.counter = 0

    def _open(self) -> None:
        if self.unplugged.is_set():
            raise CameraNotFoundError("counting camera is unplugged")
        self.opens += 1

    def _grab(self):
        time.sleep(0.005)
        if self.unplugged.is_set():
            raise CameraDisconnectedError("cable pulled")
        if not self.deliver:
            return None
        self.counter += 1
        return np.full((4, 4, 3), self.counter % 256, np.uint8), np.full((4, 4), self.counter, np.uint16)

    def _close(self) -> None:
        self.closes += 1


def _config(**options) -> CameraConfig:
    base = {"reconnect_backoff_s": 0.02, "max_backoff_s": 0.08, "first_frame_timeout_s": 1.0}
    return CameraConfig(name="count", width=4, height=4, options={**base, **options})


def test_threaded_camera_publishes_numbered_frames():
    camera = CountingCamera(_config())
    with camera:
        first = camera.read_latest()
        later = camera.wait_for_frame(1.0, after_seq=first.seq + 5)
        assert later is not None and later.seq > first.seq + 5
        assert later.depth.dtype == np.uint16 and later.depth[0, 0] == later.seq + 1
        assert camera.is_connected
    assert not camera.is_connected and camera.closes == 1
    camera.disconnect()   # twice is fine
    with pytest.raises(CameraDisconnectedError):
        camera.read_latest()


def test_no_first_frame_fails_connect_and_releases_the_device():
    camera = CountingCamera(_config(first_frame_timeout_s=0.2), deliver=False)
    with pytest.raises(CameraError, match="no frame within 0.2 s"):
        camera.connect()
    assert not camera.is_connected and camera.closes >= 1


def test_unplug_reports_disconnected_and_reconnects_with_backoff():
    camera = CountingCamera(_config())
    with camera:
        camera.unplugged.set()
        time.sleep(0.3)
        seq_before = camera.latest().seq   # the last frame before the cable was pulled
        with pytest.raises(CameraDisconnectedError, match="cable pulled.*reconnecting"):
            camera.read_latest()
        attempts = camera.reconnect_attempts
        # Backoff doubles up to 80 ms: about 0.02+0.04+0.08+0.08 ... -> a handful of tries, not hundreds.
        assert 2 <= attempts <= 8, attempts
        camera.unplugged.clear()
        frame = camera.wait_for_frame(1.0, after_seq=seq_before)
        assert frame is not None and frame.seq == seq_before + 1   # numbering continues
        assert camera.reconnects == 1 and camera.disconnected_reason is None and camera.opens == 2
        assert camera.read_latest().seq >= frame.seq
