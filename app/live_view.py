"""Live camera feeds for the browser: newest frame of each camera as a JPEG, pulled.

Each camera tile in the page runs its own "pull" loop over app/live_route.py's HTTP route: it
asks for the next frame newer than the one it shows, waits for the answer, shows it, and asks
again. A slow link or a busy tab therefore gets fewer, fresher frames instead of a growing backlog (NOTES.md: the pull loop
was the only method that stayed usable on a 4 Mbit/s link). Every camera loops on its own,
so each shows at its own rate. Frames are encoded once per camera frame, whatever the number
of open tabs, and never written to disk.

Latest frame wins, per client: a pull is answered with the newest frame there is (never the
next one in a backlog; frames in between are dropped for that client), one pull per tile is in
flight at a time, and nothing is queued on the server for any client. So on a slow link the
frame rate falls and a frame's age at display stays about one frame's transfer time plus one
camera period (tests/network/test_live_view_slow_link.py measures it). Each answer carries
`captured_ms`, the capture time on the wall clock (ms since the epoch), so a page can tell how
old a frame is when it shows it (camera_tile.js keeps window.ewamFrameLog).
"""
from __future__ import annotations

import base64
import collections
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from hardware.camera import Camera, CameraError, Frame


@dataclass
class LiveViewConfig:
    jpeg_quality: int = 80
    max_wait_s: float = 0.5         # a pull waits this long for a newer frame, then answers "no news"
    poll_s: float = 0.004           # for cameras without wait_for_frame: how often to look
    stale_s: float = 1.0            # older than this, the tile shows the frame as stalled
    depth_range_mm: tuple[int, int] = (200, 2000)  # colour scale of the depth view


def encode_jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """RGB uint8 HxWx3 -> JPEG bytes."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"encode_jpeg needs an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return buf.tobytes()


def jpeg_b64(rgb: np.ndarray, quality: int = 80) -> str:
    return base64.b64encode(encode_jpeg(rgb, quality)).decode("ascii")


def colorize_depth(depth_mm: np.ndarray, depth_range_mm: tuple[int, int]) -> np.ndarray:
    """uint16 millimetres -> RGB (turbo colour map); zero (no reading) stays black."""
    lo, hi = depth_range_mm
    scaled = np.clip((depth_mm.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1)), 0, 255)
    rgb = cv2.cvtColor(cv2.applyColorMap(scaled.astype(np.uint8), cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[depth_mm == 0] = 0
    return rgb


class _RateMeter:
    """Frames per second of a camera, from the (seq, capture time) pairs seen over ~1 s."""

    def __init__(self, window_s: float = 1.0):
        self.window_s = window_s
        self._samples: collections.deque[tuple[int, float]] = collections.deque()

    def add(self, seq: int, timestamp: float) -> None:
        if self._samples and seq <= self._samples[-1][0]:
            return
        self._samples.append((seq, timestamp))
        while len(self._samples) > 2 and timestamp - self._samples[0][1] > self.window_s:
            self._samples.popleft()

    @property
    def fps(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (s0, t0), (s1, t1) = self._samples[0], self._samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0


class _CameraFeed:
    """One camera: the newest frame encoded once, shared by every viewer."""

    def __init__(self, camera: Camera, config: LiveViewConfig):
        self.camera = camera
        self.config = config
        self.meter = _RateMeter()
        self._lock = threading.Lock()
        self._encoded: dict[str, tuple[int, bytes]] = {}   # view ("rgb"/"depth") -> (seq, jpeg)

    @property
    def has_depth(self) -> bool:
        return bool(self.camera.config.use_depth)

    def _wait_newer(self, after_seq: int) -> Frame | None:
        wait = getattr(self.camera, "wait_for_frame", None)   # ThreadedCamera (sim, RealSense)
        if wait is not None:
            return wait(self.config.max_wait_s, after_seq=after_seq)
        deadline = time.monotonic() + self.config.max_wait_s
        while True:
            frame = self.camera.latest()
            if frame is not None and frame.seq > after_seq:
                return frame
            if time.monotonic() > deadline:
                return None
            time.sleep(self.config.poll_s)

    def _encode(self, frame: Frame, view: str) -> bytes:
        with self._lock:
            cached = self._encoded.get(view)
            if cached is not None and cached[0] == frame.seq:
                return cached[1]
            if view == "depth":
                image = colorize_depth(frame.depth, self.config.depth_range_mm)
            else:
                image = frame.rgb
            jpeg = encode_jpeg(image, self.config.jpeg_quality)
            self._encoded[view] = (frame.seq, jpeg)
            self.meter.add(frame.seq, frame.timestamp)
            return jpeg

    def next_frame(self, after_seq: int, depth: bool) -> dict:
        name = self.camera.name
        if not self.camera.is_connected:
            return {"camera": name,
                    "error": f"camera '{name}' is not connected: check its cable and restart the console"}
        reason = getattr(self.camera, "disconnected_reason", None)
        if reason:
            return {"camera": name, "error": f"camera '{name}' lost ({reason}); reconnecting by itself"}
        frame = self._wait_newer(after_seq)
        if frame is None:
            latest = self.camera.latest()
            age = latest.age_s if latest is not None else None
            return {"camera": name, "seq": after_seq, "stale": True,
                    "error": (f"camera '{name}' has delivered no frame yet" if latest is None else
                              f"camera '{name}': no new frame for {age:.1f} s (stream stalled)")
                    if age is None or age > self.config.stale_s else None}
        view = "depth" if depth and frame.depth is not None else "rgb"
        jpeg = self._encode(frame, view)
        return {"camera": name, "seq": frame.seq, "jpeg": jpeg, "view": view,
                "age_ms": round(frame.age_s * 1000.0, 1), "fps": round(self.meter.fps, 1),
                "captured_ms": round((time.time() - frame.age_s) * 1000.0, 1),
                "width": int(frame.rgb.shape[1]), "height": int(frame.rgb.shape[0]), "error": None}


class LiveFeeds:
    """The console's view of all cameras; `next_frame` answers each page tile's pull (app/live_route.py)."""

    def __init__(self, cameras: dict[str, Camera], config: LiveViewConfig | None = None):
        if not cameras:
            raise ValueError("LiveFeeds needs at least one camera; check the rig configuration")
        self.config = config or LiveViewConfig()
        self._feeds = {name: _CameraFeed(cam, self.config) for name, cam in cameras.items()}
        self._served = dict.fromkeys(self._feeds, 0)     # frames handed to pages, per camera
        self._served_lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self._feeds)

    def has_depth(self, name: str) -> bool:
        return self._feeds[name].has_depth

    def next_frame(self, name: str, after_seq: int = -1, depth: bool = False) -> dict:
        """The first frame of `name` newer than `after_seq` (waits up to max_wait_s).

        Returns a dict: seq, jpeg (bytes), view, age_ms, captured_ms (wall clock), fps, width, height,
        error (plain words, or None); everything but jpeg is JSON-ready. Never raises for camera
        trouble: the page shows the error."""
        feed = self._feeds.get(name)
        if feed is None:
            return {"camera": name, "error": f"unknown camera '{name}'; this rig has {', '.join(self._feeds)}"}
        try:
            reply = feed.next_frame(int(after_seq), bool(depth))
        except CameraError as exc:
            return {"camera": name, "error": str(exc)}
        if reply.get("jpeg"):
            with self._served_lock:
                self._served[name] += 1
        return reply

    def served(self) -> dict[str, int]:
        """Frames handed out so far per camera, over all pages (a soak without browser automation
        reads the page's frame rate here)."""
        with self._served_lock:
            return dict(self._served)
