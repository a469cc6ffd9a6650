"""DatasetWriter: records episodes into a LeRobot v3 dataset without blocking the control loop.

    writer = DatasetWriter("data/demos", spec)      # creates, or resumes an existing dataset
    writer.start_episode("put the red block on the plate")
    for each tick: writer.add_frame({"head": rgb, ...}, state, action)   # copies, never encodes
    writer.add_imagined(chunk_index, start_frame_index, frames, latency_ms)  # policy rollouts only
    index = writer.save_episode()                   # returns at once; finishing runs in background
    writer.wait(); writer.close()

Frames stream into one ffmpeg process per camera while the episode is recorded, so saving
only has to flush the last frames and write small files. Each episode's files are written
under temp names and renamed into place; meta/info.json is rewritten last (the commit point).
"""
from __future__ import annotations

import atexit
import fcntl
import json
import os
import queue
import shutil
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from policy.episodes import fields as episode_fields
from policy.episodes import layout
from policy.episodes.buffer import EpisodeBuffer
from policy.episodes.depth import DepthEncoder
from policy.episodes.spec import DatasetSpec
from policy.episodes.video import ImageStats, VideoConfig, VideoEncoder


def release_arrow_memory() -> None:
    """Hand pyarrow's freed memory back to the OS. Its default pool (mimalloc in the wheels) keeps
    the pages a parquet write freed: in a 60-min recording soak its 1 GiB reservation held 11 MB
    more every quarter hour. Call it from the thread that wrote (mimalloc's heaps are per thread)."""
    pa.default_memory_pool().release_unused()


class DatasetWriteError(RuntimeError):
    """Recording cannot go on (disk full, unwritable directory, ...); the message says what to do."""


@dataclass
class WriterConfig:
    video: VideoConfig = field(default_factory=VideoConfig)
    min_free_mb: float = 64.0          # start_episode refuses below this much free disk space


@dataclass
class WriterStatus:
    """What the console shows about recording."""
    recording: bool                    # an episode is open
    frames: int                        # frames in the open episode
    episodes_saved: int                # episodes committed to disk
    queued: int                        # saved episodes still being finalised
    encoding: bool                     # finalising in progress
    encoder_backlog: int               # frames of the open episode not yet encoded
    last_error: str | None


_OPEN_WRITERS: "weakref.WeakSet[DatasetWriter]" = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    """A script that saves and then simply ends still gets its queued episodes written."""
    for writer in list(_OPEN_WRITERS):
        writer.close()


class DatasetWriter:
    def __init__(self, root: str | Path, spec: DatasetSpec | None = None, config: WriterConfig | None = None):
        self.root = Path(root)
        self.config = config or WriterConfig()
        self._lock_file = self._acquire_lock()
        try:
            self.spec, self._state = layout.open_for_append(self.root, spec)
        except BaseException:
            self._release_lock()
            raise
        self._episode: EpisodeBuffer | None = None
        self._next_index = self._state.total_episodes
        self._error: str | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._queued = 0
        self._busy = threading.Lock()     # held by the finaliser while it writes one episode
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._finalise_loop, name="dataset-finaliser", daemon=True)
        self._thread.start()
        _OPEN_WRITERS.add(self)   # closed at interpreter exit (see _close_open_writers)

    # ---- locking: one writer per dataset (flock dies with the process, even on SIGKILL) -----------
    def _acquire_lock(self):
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock_path = self.root / ".writer.lock"
            lock_path.touch()
            f = open(lock_path)        # read-only: flock needs no write access
        except OSError as e:
            raise DatasetWriteError(f"cannot create dataset directory {self.root}: {e.strerror}; "
                                    f"choose a writable location") from e
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise DatasetWriteError(f"dataset {self.root} is already open for writing by another "
                                    f"DatasetWriter (process or thread); close it first") from None
        return f

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # ---- recording --------------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        """Episodes saved so far, including those still being finalised."""
        return self._next_index

    def _check_usable(self) -> None:
        if self._closed:
            raise DatasetWriteError("this DatasetWriter is closed; open a new one")
        if self._error:
            raise DatasetWriteError(f"recording stopped: {self._error}")

    def start_episode(self, task: str, metadata: dict | None = None) -> None:
        """Open an episode. metadata: small JSON-able facts kept with it (e.g. {"seed": 3, "task": "..."})."""
        self._check_usable()
        if self._episode is not None:
            raise DatasetWriteError("an episode is already being recorded: save_episode() or discard_episode() first")
        if not isinstance(task, str) or not task.strip():
            raise ValueError("task must be a non-empty instruction string, e.g. 'put the red block on the plate'")
        if not os.access(self.root, os.W_OK):
            raise DatasetWriteError(f"dataset directory {self.root} is not writable; fix its permissions "
                                    f"or record elsewhere")
        free_mb = shutil.disk_usage(self.root).free / 2**20
        if free_mb < self.config.min_free_mb:
            raise DatasetWriteError(f"only {free_mb:.1f} MB free on the disk holding {self.root} "
                                    f"(need {self.config.min_free_mb} MB): free space or record elsewhere")
        metadata = dict(metadata or {})
        try:
            json.dumps(metadata)
        except TypeError as e:
            raise ValueError(f"episode metadata must be JSON-serialisable (str, int, float, lists, dicts): {e}") from e
        index = self._next_index
        stats = {cam: ImageStats() for cam in self.spec.cameras}
        encoders = {cam: VideoEncoder(layout.video_file(self.root, cam, index), h, w, self.spec.fps,
                                      self.config.video, stats[cam])
                    for cam, (h, w) in self.spec.cameras.items()}
        self._episode = EpisodeBuffer(index=index, task=task.strip(), encoders=encoders, image_stats=stats,
                                 metadata=metadata, depth={cam: DepthEncoder(cam) for cam in self.spec.depth_cameras})

    def add_frame(self, images: dict[str, np.ndarray], state, action, timestamp: float | None = None,
                  depth: dict[str, np.ndarray] | None = None, success: bool | None = None) -> None:
        """Copy one tick (images and state BEFORE the step, the action sent) into the episode.

        timestamp: the caller's clock for this frame (default time.monotonic()), kept as capture_time.
        success: the task's success check at this frame, if there is one (the first True frame
        starts next.success of an episode labelled "success").
        depth: camera -> (H, W) uint16 millimetres, for the spec's depth_cameras (required for them)."""
        ep = self._episode
        if ep is None:
            raise DatasetWriteError("add_frame before start_episode(task)")
        if self._error:
            raise DatasetWriteError(f"recording stopped: {self._error}")
        if images.keys() != self.spec.cameras.keys():
            raise ValueError(f"images has cameras {sorted(images)}, the dataset records {sorted(self.spec.cameras)}")
        copies = {}
        for cam, (h, w) in self.spec.cameras.items():
            img = images[cam]
            if img.shape != (h, w, 3) or img.dtype != np.uint8:
                raise ValueError(f"camera {cam!r}: image {img.shape} {img.dtype}, expected ({h}, {w}, 3) uint8 RGB")
            copies[cam] = img.copy()  # the caller may reuse its buffer
        depth_copies = {}
        if self.spec.depth_cameras:
            depth = depth or {}
            for cam in self.spec.depth_cameras:
                d = depth.get(cam)
                if d is None or d.shape != self.spec.cameras[cam] or d.dtype != np.uint16:
                    raise ValueError(f"depth camera {cam!r}: expected depth[{cam!r}] of shape {self.spec.cameras[cam]} "
                                     f"uint16 (mm), got {None if d is None else (d.shape, d.dtype)}")
                depth_copies[cam] = d.copy()
        state = np.array(state, dtype=np.float32).reshape(-1)
        action = np.array(action, dtype=np.float32).reshape(-1)
        if state.shape[0] != self.spec.state_dim or action.shape[0] != self.spec.action_dim:
            raise ValueError(f"state has {state.shape[0]} and action {action.shape[0]} values, the dataset "
                             f"expects {self.spec.state_dim} and {self.spec.action_dim}")
        if not (np.isfinite(state).all() and np.isfinite(action).all()):
            raise ValueError("state or action contains NaN/inf; refusing to record it")
        for cam, enc in ep.encoders.items():
            if enc.error:
                self._error = enc.error
                raise DatasetWriteError(f"recording stopped: {enc.error}")
            enc.push(copies[cam])
        for cam, d in depth_copies.items():
            ep.depth[cam].push(d)
        ep.states.append(state)
        ep.actions.append(action)
        if success and ep.success_frame < 0:
            ep.success_frame = ep.length - 1      # this frame (already appended)
        ep.capture_times.append(time.monotonic() if timestamp is None else float(timestamp))

    def add_imagined(self, chunk_index: int, start_frame_index: int, frames: np.ndarray, latency_ms: float) -> None:
        """What the policy imagined for one action chunk: (T, h, w, 3) uint8 decoded future frames."""
        ep = self._episode
        if ep is None:
            raise DatasetWriteError("add_imagined before start_episode(task)")
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
            raise ValueError(f"imagined frames must be (T, h, w, 3) uint8 with T > 0, "
                             f"got {frames.shape} {frames.dtype}")
        if ep.imagined and ep.imagined[0][2].shape[1:] != frames.shape[1:]:
            raise ValueError(f"imagined frames of one episode must share a size: {ep.imagined[0][2].shape[1:3]} "
                             f"then {frames.shape[1:3]}")
        ep.imagined.append((int(chunk_index), int(start_frame_index), frames.copy(), float(latency_ms)))

    def set_surprise(self, chunk_index: int, surprise: float) -> None:
        """The imagination surprise of a chunk of the open episode (stored beside its imagined
        future, column `surprise`; NaN for chunks that never got one). Ignored with no open episode:
        a chunk's surprise arrives 16 ticks after it, possibly after its episode was saved."""
        if self._episode is not None:
            self._episode.surprise[int(chunk_index)] = float(surprise)

    @property
    def success_seen(self) -> bool:
        """The open episode's success check held at some frame (add_frame(success=True))."""
        return self._episode is not None and self._episode.success_frame >= 0

    def save_episode(self, **fields) -> int:
        """Queue the open episode for finalising; returns its index at once (see wait()).

        fields: label ("success" / "failure" / "unlabelled"), operator, notes, quality_flags,
        quality (policy.episodes.fields); the label can still change later (update_episode)."""
        ep = self._episode
        if ep is None:
            raise DatasetWriteError("save_episode without an open episode (start_episode first)")
        self._check_usable()
        fields.pop("success_frame", None)
        ep.fields = episode_fields.clean(fields)
        if ep.length == 0:
            raise DatasetWriteError("the episode has no frames: add_frame at least once, or discard_episode()")
        self._episode = None
        for enc in [*ep.encoders.values(), *ep.depth.values()]:
            enc.finish()
        with self._cond:
            self._queued += 1
        self._jobs.put(ep)
        self._next_index = ep.index + 1
        return ep.index

    def update_episode(self, index: int, **fields) -> None:
        """Change the label / operator / notes / quality of a saved episode (queued behind the
        episodes still being written, so it may follow save_episode at once; see wait())."""
        self._check_usable()
        if not 0 <= index < self._next_index:
            raise IndexError(f"episode {index} is not saved: the dataset has {self._next_index} episodes")
        changes = episode_fields.clean(fields)
        with self._cond:
            self._queued += 1
        self._jobs.put(("update", int(index), changes))

    def remove_last_episode(self, timeout: float | None = 60.0) -> int:
        """Discard-and-redo: drop the last saved episode; the next episode takes its index.

        Waits for the episodes still being written first (the redo would reuse their file
        names), typically well under a second as videos stream while recording. Returns the
        index removed."""
        self._check_usable()
        if self._episode is not None:
            raise DatasetWriteError("an episode is open: discard_episode() it first (that is the one to redo)")
        if self._next_index == 0:
            raise DatasetWriteError("the dataset has no episode to remove")
        self.wait(timeout)
        with self._busy:
            try:
                self._state = layout.drop_last_episodes(self.root, self.spec, self._state, self._next_index - 1)
            except Exception as e:  # noqa: BLE001
                self._error = f"removing episode {self._next_index - 1} failed: {e} -> reopen the dataset to go on"
                raise DatasetWriteError(self._error) from e
            self._next_index -= 1
        return self._next_index

    def discard_episode(self) -> None:
        ep, self._episode = self._episode, None
        if ep is not None:
            ep.abort()

    # ---- background finalising ----------------------------------------------------------------------
    def _finalise_loop(self) -> None:
        while True:
            ep = self._jobs.get()
            if ep is None:
                return
            if isinstance(ep, tuple):            # ("update", index, changes)
                with self._busy:
                    if self._error is None:
                        try:
                            layout.update_episode_fields(self.root, self.spec, ep[1], ep[2])
                        except Exception as e:  # noqa: BLE001
                            self._error = f"changing the fields of episode {ep[1]} failed: {e} -> reopen the " \
                                          f"dataset to go on"
                with self._cond:
                    self._queued -= 1
                    self._cond.notify_all()
                continue
            with self._busy:
                if self._error is None:
                    try:
                        self._state = layout.commit_episode(self.root, self.spec, self._state, ep,
                                                             self.config.video)
                    except Exception as e:  # noqa: BLE001 - any failure stops recording with its reason
                        self._error = layout.describe_error(self.root, ep.index, e)
                if self._error is not None:
                    try:
                        ep.abort()
                        layout.remove_episode_files(self.root, ep.index, self.spec)
                    except Exception:  # noqa: BLE001 - best effort; reopening cleans up too
                        pass
            release_arrow_memory()
            with self._cond:
                self._queued -= 1
                self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> None:
        """Block until every saved episode is on disk; raises DatasetWriteError if one failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queued:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"{self._queued} episode(s) still being saved after {timeout} s")
                self._cond.wait(left)
        if self._error:
            raise DatasetWriteError(self._error)

    flush = wait

    @property
    def status(self) -> WriterStatus:
        ep = self._episode
        return WriterStatus(
            recording=ep is not None, frames=ep.length if ep else 0,
            episodes_saved=self._state.total_episodes, queued=self._queued,
            encoding=self._busy.locked() or self._queued > 0,
            encoder_backlog=max((e.backlog for e in ep.encoders.values()), default=0) if ep else 0,
            last_error=self._error)

    def close(self) -> None:
        """Discard an open episode, finish saving the queued ones, release the dataset."""
        if self._closed:
            return
        self.discard_episode()
        self._jobs.put(None)
        self._thread.join()
        self._closed = True
        self._release_lock()
        _OPEN_WRITERS.discard(self)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self._release_lock()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
