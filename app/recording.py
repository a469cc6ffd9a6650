"""Recording episodes from the console: teleop demonstrations and policy rollouts.

The controller calls `on_tick` on its own thread after every control tick; while an episode
is open each tick becomes one dataset frame (images and state before the step, the action
sent). DatasetWriter copies and hands frames to background encoders, so this stays cheap.
For policy rollouts, the imagined future of every chunk is stored next to the frame at which
that chunk started executing, so the review tab can show what the policy expected to see.
DatasetWriter is not thread-safe: one lock serialises the console's buttons and the ticks.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from hardware.arm import RobotSpec
from policy.episodes.spec import DatasetSpec
from policy.episodes.writer import DatasetWriter

log = logging.getLogger(__name__)


def dataset_spec_for(robot: RobotSpec, camera_sizes: dict[str, tuple[int, int]],
                     depth_cameras: tuple[str, ...] = ()) -> DatasetSpec:
    """camera_sizes: name -> (height, width)."""
    return DatasetSpec(fps=int(round(robot.control_hz)), robot_type=robot.name, cameras=camera_sizes,
                       state_names=robot.joint_names, action_names=robot.joint_names,
                       depth_cameras=depth_cameras)


@dataclass
class RecordingStatus:
    recording: bool
    kind: str | None                 # "teleop" / "policy" while recording
    task: str
    frames: int
    episodes_saved: int
    saving: int                      # saved episodes still being written
    encoder_backlog: int             # frames of the open episode not yet encoded
    stale_frames: int                # camera frames recorded late (machine too busy to capture in time)
    dataset: str
    last_saved: int | None
    error: str | None


class Recorder:
    def __init__(self, root: str | Path, spec: DatasetSpec, cameras: dict | None = None):
        """cameras: name -> Camera; lets a tick whose capture failed (a stale frame under load)
        be recorded with the camera's newest frame instead of being dropped."""
        self.root = Path(root)
        self.cameras = cameras or {}
        self.writer = DatasetWriter(self.root, spec)
        self._lock = threading.Lock()
        self._kind: str | None = None
        self._task = ""
        self._tick_frame: dict[int, int] = {}       # control tick -> frame index in the open episode
        self._pending_futures: list = []            # futures whose observation tick is not recorded yet
        self._last_saved: int | None = None
        self._error: str | None = None
        self.dropped_frames = 0
        self.stale_frames = 0            # camera frames recorded although older than the camera's max age

    # -- buttons -----------------------------------------------------------------------------
    def start(self, task: str, kind: str = "teleop") -> None:
        with self._lock:
            if self._kind is not None:
                raise RuntimeError(f"already recording a {self._kind} episode: save or discard it first")
            self.writer.start_episode(task)
            self._kind, self._task, self._error = kind, task.strip(), None
            self.dropped_frames = self.stale_frames = 0
            self._tick_frame.clear()
            self._pending_futures.clear()

    def save(self) -> int:
        """Queue the open episode for writing; returns its index (the file appears shortly)."""
        with self._lock:
            if self._kind is None:
                raise RuntimeError("nothing is being recorded: press Start recording first")
            try:
                index = self.writer.save_episode()
            except Exception:
                # An episode that cannot be saved (no frames, disk full) is dropped, so that the
                # next START can open a new one; the caller shows the error.
                try:
                    self.writer.discard_episode()
                except Exception as exc:  # noqa: BLE001 - the save error is the one to report
                    log.warning("discarding the unsaved episode failed too: %s", exc)
                raise
            finally:
                self._kind = None
            self._last_saved = index
            return index

    def discard(self) -> None:
        with self._lock:
            self.writer.discard_episode()
            self._kind = None

    @property
    def kind(self) -> str | None:
        return self._kind

    # -- listeners ---------------------------------------------------------------------------
    def on_tick(self, record) -> None:
        """Controller tick listener (control thread)."""
        if self._kind is None:
            return
        with self._lock:
            if self._kind is None:
                return
            images = record.images
            missing = [c for c in self.writer.spec.cameras if c not in images]
            if missing:
                images = dict(images)
                for name in missing:     # stale beats a hole: videos and states stay aligned
                    frame = self.cameras[name].latest() if name in self.cameras else None
                    if frame is not None:
                        images[name] = frame.rgb
                        self.stale_frames += 1
            missing = [c for c in self.writer.spec.cameras if c not in images]
            if missing:                  # no frame at all: skip the tick rather than desync the videos
                self.dropped_frames += 1
                self._error = (f"{self.dropped_frames} tick(s) not recorded: no image from camera(s) "
                               f"{', '.join(missing)}")
                return
            try:
                frame_index = self.writer.status.frames
                self.writer.add_frame(images, record.state, record.action, record.timestamp)
            except Exception as exc:     # disk full, bad frame: stop recording, say why in the page
                self._error = f"recording stopped: {exc}"
                log.error(self._error)
                self.writer.discard_episode()
                self._kind = None
                return
            self._tick_frame[record.tick] = frame_index
            if self._pending_futures:
                self._flush_futures()

    def on_future(self, future) -> None:
        """FuturePreviews listener (preview thread): keep the imagined future of a rollout chunk."""
        if self._kind != "policy":
            return
        with self._lock:
            if self._kind != "policy":
                return
            self._pending_futures.append(future)
            self._flush_futures()

    def _flush_futures(self) -> None:
        # A future belongs to the frame whose observation the policy saw (the chunk's start tick);
        # chunks requested before the episode began are not part of it.
        first_tick = min(self._tick_frame, default=None)
        keep = []
        for future in self._pending_futures:
            start = self._tick_frame.get(future.start_tick)
            if start is None:
                if (first_tick is None or future.start_tick > first_tick) and len(keep) < 32:
                    keep.append(future)
                continue
            try:
                self.writer.add_imagined(future.chunk_id, start, future.frames, future.latency_ms)
            except Exception as exc:
                self._error = f"imagined future of chunk {future.chunk_id} not recorded: {exc}"
        self._pending_futures = keep

    # -- status ------------------------------------------------------------------------------
    def status(self) -> RecordingStatus:
        s = self.writer.status
        return RecordingStatus(recording=self._kind is not None, kind=self._kind, task=self._task,
                               frames=s.frames, episodes_saved=s.episodes_saved, saving=s.queued,
                               encoder_backlog=s.encoder_backlog, stale_frames=self.stale_frames,
                               dataset=str(self.root.resolve()),
                               last_saved=self._last_saved, error=self._error or s.last_error)

    def close(self) -> None:
        with self._lock:
            self._kind = None
        self.writer.close()
