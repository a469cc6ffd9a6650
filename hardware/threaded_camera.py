"""A Camera that captures in a background thread and reconnects by itself.

Adapters (RealSense, OpenCV, replay) implement three hooks: `_open` (acquire the device,
raise CameraNotFoundError), `_grab` (block for at most a short while and return the next
(rgb, depth) pair, None on a timeout, or raise CameraDisconnectedError when the device is
gone) and `_close`. This class owns the thread, the newest frame, sequence numbers and the
reconnect loop, so every adapter behaves the same way to the control loop.
"""
from __future__ import annotations

import abc
import logging
import threading
import time

import numpy as np

from hardware.camera import Camera, CameraConfig, CameraDisconnectedError, CameraError, Frame

log = logging.getLogger(__name__)


class ThreadedCamera(Camera):
    """Options (CameraConfig.options): first_frame_timeout_s (5.0), reconnect_backoff_s (0.5,
    doubled after every failed attempt), max_backoff_s (5.0)."""

    def __init__(self, config: CameraConfig):
        super().__init__(config)
        opts = config.options
        self.first_frame_timeout_s = float(opts.get("first_frame_timeout_s", 5.0))
        self.reconnect_backoff_s = float(opts.get("reconnect_backoff_s", 0.5))
        self.max_backoff_s = float(opts.get("max_backoff_s", 5.0))
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._latest: Frame | None = None
        self._next_seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost: str | None = None      # why the device is gone, while reconnecting
        self.reconnect_attempts = 0         # failed attempts since the device was lost
        self.reconnects = 0                 # successful reconnects since connect()

    # -- hooks for adapters ------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None:
        """Acquire the device and start streaming; raise CameraNotFoundError if absent."""

    @abc.abstractmethod
    def _grab(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Next (rgb, depth); None if nothing arrived in a short wait; CameraDisconnectedError if gone."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the device; must not raise and must be safe to call twice."""

    def describe(self) -> str:
        """How error messages name this camera, e.g. "camera 'head' (RealSense 123456)"."""
        return f"camera '{self.name}'"

    # -- Camera ------------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the device, start the capture thread and wait for the first frame."""
        if self.is_connected:
            return
        self._open()
        self._stop.clear()
        self._lost = None
        self.reconnect_attempts = self.reconnects = 0
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        if not self.wait_for_frame(self.first_frame_timeout_s):
            reason = self._lost
            self.disconnect()
            raise CameraError(
                f"{self.describe()} opened but delivered no frame within {self.first_frame_timeout_s:.1f} s"
                + (f" ({reason})" if reason else "")
                + "; check the resolution/fps are supported and the cable/USB port")

    def disconnect(self) -> None:
        self._stop.set()
        with self._new_frame:
            self._new_frame.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._thread = None
        self._close()

    @property
    def is_connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def latest(self) -> Frame | None:
        with self._lock:
            return self._latest

    def read_latest(self, max_age_s: float | None = None) -> Frame:
        lost = self._lost
        if lost is not None and self.is_connected:
            raise CameraDisconnectedError(
                f"{self.describe()} is disconnected ({lost}); reconnecting in the background "
                f"(failed attempts so far: {self.reconnect_attempts}). Check the cable and power.")
        return super().read_latest(max_age_s)

    def wait_for_frame(self, timeout_s: float, after_seq: int = -1) -> Frame | None:
        """Block until a frame with seq > after_seq exists (or timeout); returns it or None."""
        deadline = time.monotonic() + timeout_s
        with self._new_frame:
            while self._latest is None or self._latest.seq <= after_seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._new_frame.wait(remaining)
            return self._latest

    @property
    def disconnected_reason(self) -> str | None:
        """Why the device is gone while the thread tries to reconnect; None when streaming."""
        return self._lost

    # -- the capture thread --------------------------------------------------------------------
    def _publish(self, rgb: np.ndarray, depth: np.ndarray | None) -> None:
        now = time.monotonic()
        with self._new_frame:
            self._latest = Frame(rgb=rgb, timestamp=now, seq=self._next_seq, depth=depth)
            self._next_seq += 1
            self._new_frame.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                got = self._grab()
            except CameraDisconnectedError as e:
                self._handle_loss(str(e))
                continue
            except Exception as e:  # a driver error mid-stream: treat it like a lost device
                log.exception("%s: capture failed", self.describe())
                self._handle_loss(f"{type(e).__name__}: {e}")
                continue
            if got is not None:
                self._publish(*got)

    def _handle_loss(self, reason: str) -> None:
        """Close the device and retry _open with exponential backoff until it works or we stop."""
        self._lost = reason
        log.warning("%s lost: %s; reconnecting", self.describe(), reason)
        self._close()
        delay = self.reconnect_backoff_s
        while not self._stop.wait(delay):
            try:
                self._open()
            except Exception as e:  # any failure to reopen just means "not back yet"
                self.reconnect_attempts += 1
                log.info("%s: reconnect attempt %d failed: %s", self.describe(), self.reconnect_attempts, e)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self.reconnects += 1
            self.reconnect_attempts = 0
            self._lost = None
            log.warning("%s reconnected", self.describe())
            return
