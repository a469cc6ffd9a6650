"""Recording episodes from the console: teleop demonstrations and policy rollouts.

The controller calls `on_tick` on its own thread after every control tick; while an episode
is open each tick becomes one dataset frame (images and state before the step, the action
sent). DatasetWriter copies and hands frames to background encoders, so this stays cheap.
For policy rollouts, the imagined future of every chunk is stored next to the frame at which
that chunk started executing, so the review tab can show what the policy expected to see.
DatasetWriter is not thread-safe: one lock serialises the console's buttons and the ticks.

Labels: a policy rollout is labelled by the task's success check (set_success_check, e.g. the
sim's), which also marks the first successful frame (next.success); a teleop demonstration is
labelled by the operator (save(label=...) or label_last(label) right after saving). Quality:
every recorded tick feeds a QualityMonitor (policy.episodes.quality); its figures and flags are
in status() while recording and are stored with the episode. discard_last() is discard-and-redo.
Cameras that render a noise-free scene (adapter "sim") are not judged frozen: a still view of a
simulated scene is bit-identical frame after frame, which for a real sensor means a stuck one; a
stalled sim renderer still shows as repeated frames (same capture time).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hardware.arm import RobotSpec
from policy.episodes.fields import normalise_label
from policy.episodes.quality import QualityLimits, QualityMonitor
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
    last_label: str | None = None    # label of the last saved episode
    operator: str = ""
    quality_ok: bool = True          # the open (or last) episode breaks no quality limit
    quality_flags: list[str] = field(default_factory=list)
    quality: dict = field(default_factory=dict)   # figures (policy.episodes.quality)


class Recorder:
    def __init__(self, root: str | Path, spec: DatasetSpec, cameras: dict | None = None,
                 quality_limits: QualityLimits | dict | None = None, operator: str = ""):
        """cameras: name -> Camera; lets a tick whose capture failed (a stale frame under load)
        be recorded with the camera's newest frame instead of being dropped (and gives the
        capture time of each frame for the quality figures)."""
        self.root = Path(root)
        self.cameras = cameras or {}
        self.writer = DatasetWriter(self.root, spec)
        self.quality_limits = quality_limits if isinstance(quality_limits, QualityLimits) \
            else QualityLimits.from_dict(quality_limits)
        self.operator = operator
        # noise-free renders: identical frames are a still scene, not a stuck sensor
        self._noise_free = tuple(sorted(n for n, c in self.cameras.items()
                                        if getattr(getattr(c, "config", None), "adapter", None) == "sim"))
        self._success_check: Callable[[], bool] | None = None
        self._quality: QualityMonitor | None = None
        self._last_quality: dict | None = None
        self._last_label: str | None = None
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
            self._quality = QualityMonitor(self.writer.spec.cameras, self.writer.spec.fps, self.quality_limits)
            self._kind, self._task, self._error = kind, task.strip(), None
            self.dropped_frames = self.stale_frames = 0
            self._tick_frame.clear()
            self._pending_futures.clear()

    def set_success_check(self, fn: Callable[[], bool] | None) -> None:
        """The task's success test (the same one the controller stops on): labels policy rollouts."""
        self._success_check = fn

    def _check_success(self) -> bool:
        try:
            return bool(self._success_check()) if self._success_check is not None else False
        except Exception as exc:  # noqa: BLE001 - a broken check must not stop the recording
            log.warning("success check failed: %s", exc)
            return False

    def save(self, label: str | None = None, notes: str = "", operator: str | None = None) -> int:
        """Queue the open episode for writing; returns its index (the file appears shortly).

        label: None = a policy rollout with a success check is labelled by it (success if the
        check held at any recorded tick or holds now, else failure); otherwise unlabelled.
        operator: who recorded it (None: self.operator)."""
        with self._lock:
            if self._kind is None:
                raise RuntimeError("nothing is being recorded: press Start recording first")
            if label is None and self._kind == "policy" and self._success_check is not None:
                label = "success" if self.writer.success_seen or self._check_success() else "failure"
            label = normalise_label(label)
            quality = self._judged(self._quality.status()) if self._quality is not None else None
            operator = self.operator if operator is None else operator.strip()
            fields = {"label": label, "operator": operator, "notes": (notes or "").strip()}
            if quality is not None:
                fields.update(quality_flags=quality["flags"], quality=quality["figures"])
            try:
                index = self.writer.save_episode(**fields)
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
            self._last_saved, self._last_label, self._last_quality = index, label, quality
            self._quality = None
            return index

    def label_last(self, label: str, notes: str | None = None) -> int:
        """The operator's verdict on the episode just saved ("success" / "failure" / "unlabelled")."""
        label = normalise_label(label)
        with self._lock:
            if self._last_saved is None:
                raise RuntimeError("no episode saved in this session yet: record and save one first")
            changes = {"label": label} if notes is None else {"label": label, "notes": notes}
            self.writer.update_episode(self._last_saved, **changes)
            self._last_label = label
            return self._last_saved

    def discard_last(self) -> int | None:
        """Discard-and-redo: drop the open episode, or else the last one saved in this session.
        Returns the index that was dropped (the next recording reuses it), None if nothing was."""
        with self._lock:
            if self._kind is not None:
                self.writer.discard_episode()
                self._kind, self._quality = None, None
                return self.writer.num_episodes
            if self._last_saved is None or self._last_saved != self.writer.num_episodes - 1:
                return None
            index = self.writer.remove_last_episode()
            self._last_saved = self._last_label = self._last_quality = None
            return index

    def discard(self) -> None:
        with self._lock:
            self.writer.discard_episode()
            self._kind, self._quality = None, None

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
            captured = dict(getattr(record, "capture_times", None) or {})
            missing = [c for c in self.writer.spec.cameras if c not in images]
            if missing:
                images = dict(images)
                for name in missing:     # stale beats a hole: videos and states stay aligned
                    frame = self.cameras[name].latest() if name in self.cameras else None
                    if frame is not None:
                        images[name] = frame.rgb
                        self.stale_frames += 1
            if not captured:
                captured = self._capture_times(images)
            if self._quality is not None:
                self._quality.add(record.timestamp, images, captured)   # a stale stand-in counts as repeated
            missing = [c for c in self.writer.spec.cameras if c not in images]
            if missing:                  # no frame at all: skip the tick rather than desync the videos
                self.dropped_frames += 1
                self._error = (f"{self.dropped_frames} tick(s) not recorded: no image from camera(s) "
                               f"{', '.join(missing)}")
                return
            try:
                frame_index = self.writer.status.frames
                success = self._check_success() if self._kind == "policy" and self._success_check else None
                self.writer.add_frame(images, record.state, record.action, record.timestamp, success=success)
            except Exception as exc:     # disk full, bad frame: stop recording, say why in the page
                self._error = f"recording stopped: {exc}"
                log.error(self._error)
                self.writer.discard_episode()
                self._kind = None
                return
            self._tick_frame[record.tick] = frame_index
            if self._pending_futures:
                self._flush_futures()

    def _capture_times(self, images: dict) -> dict:
        """Capture time of each recorded image, when the camera's newest frame is that image
        (the controller's TickRecord carries no timestamps; a newer frame makes it unknown)."""
        out = {}
        for name, img in images.items():
            cam = self.cameras.get(name)
            frame = cam.latest() if cam is not None else None
            if frame is not None and frame.rgb is img:
                out[name] = frame.timestamp
        return out

    def on_future(self, future) -> None:
        """FuturePreviews listener (preview thread): keep the imagined future of a rollout chunk."""
        if self._kind != "policy":
            return
        with self._lock:
            if self._kind != "policy":
                return
            self._pending_futures.append(future)
            self._flush_futures()

    def on_surprise(self, chunk_id: int, surprise: float, state: str = "") -> None:
        """SurpriseMonitor listener (its thread): the chunk's imagination surprise, stored beside
        its imagined future (arrives ~16 ticks after the chunk; lost if the episode was saved first)."""
        if self._kind != "policy":
            return
        with self._lock:
            if self._kind == "policy":
                self.writer.set_surprise(chunk_id, surprise)

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
    def quality_status(self) -> dict:
        """{"ok", "flags", "figures"} of the open episode (or the last saved one; {} before any)."""
        q = self._quality
        return self._judged(q.status()) if q is not None else dict(self._last_quality or {})

    def _judged(self, status: dict) -> dict:
        """QualityMonitor.status() without the frozen verdict on noise-free (sim) cameras."""
        if not self._noise_free:
            return status
        flags = [f for f in status["flags"] if not any(f.startswith(f"{c}: frozen") for c in self._noise_free)]
        figures = dict(status["figures"], frozen_not_judged=list(self._noise_free))
        return {"ok": not flags, "flags": flags, "figures": figures}

    def set_quality_limits(self, limits: QualityLimits | dict | None) -> None:
        """New limits, from the next episode on."""
        self.quality_limits = limits if isinstance(limits, QualityLimits) else QualityLimits.from_dict(limits)

    def status(self) -> RecordingStatus:
        s = self.writer.status
        quality = self.quality_status()
        return RecordingStatus(recording=self._kind is not None, kind=self._kind, task=self._task,
                               frames=s.frames, episodes_saved=s.episodes_saved, saving=s.queued,
                               encoder_backlog=s.encoder_backlog, stale_frames=self.stale_frames,
                               dataset=str(self.root.resolve()),
                               last_saved=self._last_saved, error=self._error or s.last_error,
                               last_label=self._last_label, operator=self.operator,
                               quality_ok=bool(quality.get("ok", True)), quality_flags=list(quality.get("flags", [])),
                               quality=quality.get("figures", {}))

    def close(self) -> None:
        with self._lock:
            self._kind = None
        self.writer.close()
