"""Any camera OpenCV can open (USB webcams by index, /dev/video paths, stream URLs, video files).

The device is CameraConfig.serial (or .source): a number is a device index, anything else a
path or URL. Video files are paced at the camera fps and, with options["loop"], start over
at the end; without it the last frame goes stale, which read_latest reports.
"""
from __future__ import annotations

import os
import time

import cv2
import numpy as np

from hardware.camera import CameraConfig, CameraDisconnectedError, CameraError, CameraNotFoundError
from hardware.threaded_camera import ThreadedCamera


class OpenCVCamera(ThreadedCamera):
    """Options (besides ThreadedCamera's): loop (video files; default False)."""

    def __init__(self, config: CameraConfig):
        super().__init__(config)
        device = config.serial if config.serial is not None else config.source
        if device is None or str(device).strip() == "":
            raise ValueError(f"camera '{config.name}': the opencv adapter needs serial= a device index "
                             "(e.g. \"0\") or a path/URL (serial or source)")
        device = str(device).strip()
        self.device: int | str = int(device) if device.isdigit() else device
        self.is_file = isinstance(self.device, str) and os.path.isfile(self.device)
        self.loop = bool(config.options.get("loop", False))
        self.ended = False                # a video file played to its end (and loop is off)
        self._capture: cv2.VideoCapture | None = None
        self._next_due = 0.0

    def describe(self) -> str:
        return f"camera '{self.name}' (OpenCV {self.device!r})"

    def _open(self) -> None:
        if isinstance(self.device, str) and "://" not in self.device and not os.path.exists(self.device):
            raise CameraNotFoundError(f"{self.describe()}: no such file or device; check the path in the config")
        capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            capture.release()
            raise CameraNotFoundError(
                f"{self.describe()} could not be opened; check the index/path (`v4l2-ctl --list-devices` "
                "lists cameras), that no other program holds it, and permissions on /dev/video*")
        if not self.is_file:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
            capture.set(cv2.CAP_PROP_FPS, self.config.fps)
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if size != self.resolution:
            capture.release()
            raise CameraError(f"{self.describe()} delivers {size[0]}x{size[1]}, the config asks for "
                              f"{self.config.width}x{self.config.height}; set width={size[0]} and "
                              f"height={size[1]} in the camera config (or pick a mode the device supports)")
        self._capture = capture
        self.ended = False
        self._next_due = time.monotonic()

    def _grab(self):
        capture = self._capture
        if capture is None:
            raise CameraDisconnectedError("capture closed")
        if self.ended:
            time.sleep(0.05)   # nothing more to read; the last frame ages into StaleFrameError
            return None
        if self.is_file:
            # Files decode faster than real time: release frames at the camera's fps.
            delay = self._next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_due = max(self._next_due + 1.0 / self.config.fps, time.monotonic() - 1.0)
        ok, bgr = capture.read()
        if not ok:
            if self.is_file and self.loop:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = capture.read()
            if not ok:
                if self.is_file:
                    self.ended = True
                    return None
                raise CameraDisconnectedError("the device stopped delivering frames")
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return rgb, None

    def _close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()
