"""Shared by the camera adapter tests: collect what a ThreadedCamera delivers."""
from __future__ import annotations

import time

from hardware.threaded_camera import ThreadedCamera


def new_frames(camera: ThreadedCamera, seconds: float, include_current: bool = False) -> list:
    """Every new frame (after the current one, which is included if asked) until none arrives
    for 0.5 s or `seconds` pass."""
    current = camera.latest()
    frames, last = ([current] if include_current else []), current.seq
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = camera.wait_for_frame(0.5, after_seq=last)
        if frame is None:
            break
        frames.append(frame)
        last = frame.seq
    return frames
