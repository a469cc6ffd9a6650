"""A camera that replays recorded video: a video file, or one camera of one episode of a
LeRobot-v3 dataset, paced at the camera fps.

CameraConfig.source is a video file or a dataset root (a directory holding meta/info.json).
Options: episode (dataset episode index, default 0), camera_key (default
"observation.images.<camera name>"), loop (start over at the end; default False, so the
last frame ages and read_latest reports it as stale; `finished` tells why).
Frames are scaled to the configured width x height if the recording differs.
"""
from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass

import av
import numpy as np
import pyarrow.parquet as pq

from hardware.camera import CameraConfig, CameraDisconnectedError, CameraNotFoundError
from hardware.threaded_camera import ThreadedCamera


@dataclass(frozen=True)
class VideoSegment:
    """Frames [from_s, to_s) of one video file (to_s None: to the end of the file)."""
    path: str
    from_s: float = 0.0
    to_s: float | None = None


def episode_segment(root: str, episode: int, camera_key: str) -> VideoSegment:
    """Where a LeRobot-v3 dataset stores camera `camera_key` of episode `episode`."""
    info_path = os.path.join(root, "meta", "info.json")
    if not os.path.isfile(info_path):
        raise CameraNotFoundError(f"{root} is not a LeRobot dataset (no meta/info.json); "
                                  "point source at the dataset root or at a video file")
    with open(info_path) as f:
        info = json.load(f)
    video_keys = sorted(k for k, v in info.get("features", {}).items() if v.get("dtype") == "video")
    if camera_key not in video_keys:
        raise CameraNotFoundError(f"dataset {root} has no camera '{camera_key}'; its cameras are "
                                  f"{video_keys}: set options['camera_key'] to one of them")
    files = sorted(glob.glob(os.path.join(root, "meta", "episodes", "*", "*.parquet")))
    if not files:
        raise CameraNotFoundError(f"dataset {root} has no meta/episodes/*/*.parquet: it holds no finished episode")
    prefix = f"videos/{camera_key}/"
    columns = ["episode_index"] + [prefix + c for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    for path in files:
        table = pq.read_table(path, columns=columns).to_pydict()
        if episode in table["episode_index"]:
            row = table["episode_index"].index(episode)
            video = info["video_path"].format(video_key=camera_key, chunk_index=table[prefix + "chunk_index"][row],
                                              file_index=table[prefix + "file_index"][row])
            return VideoSegment(os.path.join(root, video), float(table[prefix + "from_timestamp"][row]),
                                float(table[prefix + "to_timestamp"][row]))
    total = info.get("total_episodes", "?")
    raise CameraNotFoundError(f"dataset {root} has no episode {episode} (it has {total} episodes, "
                              "numbered from 0): fix options['episode']")


class ReplayCamera(ThreadedCamera):
    def __init__(self, config: CameraConfig):
        super().__init__(config)
        if not config.source:
            raise ValueError(f"camera '{config.name}': the replay adapter needs source= a video file "
                             "or a LeRobot dataset root")
        opts = config.options
        self.episode = int(opts.get("episode", 0))
        self.camera_key = str(opts.get("camera_key", f"observation.images.{config.name}"))
        self.loop = bool(opts.get("loop", False))
        self.finished = False          # played to the end with loop off
        self.segment: VideoSegment | None = None
        self._container = None
        self._frames = None            # iterator over decoded frames of the segment
        self._next_due = 0.0

    def describe(self) -> str:
        if self.config.source and os.path.isdir(self.config.source):
            return f"camera '{self.name}' (replay of {self.camera_key}, episode {self.episode} in {self.config.source})"
        return f"camera '{self.name}' (replay of {self.config.source})"

    def _open(self) -> None:
        source = self.config.source
        if os.path.isdir(source):
            segment = episode_segment(source, self.episode, self.camera_key)
        elif os.path.isfile(source):
            segment = VideoSegment(source)
        else:
            raise CameraNotFoundError(f"{self.describe()}: no such file or directory; check CameraConfig.source")
        if not os.path.isfile(segment.path):
            raise CameraNotFoundError(f"{self.describe()}: video {segment.path} is missing from the dataset")
        self.segment = segment
        self._start_segment()
        self.finished = False
        self._next_due = time.monotonic()

    def _start_segment(self) -> None:
        self._close()
        try:
            container = av.open(self.segment.path)
        except av.FFmpegError as e:
            raise CameraNotFoundError(f"{self.describe()}: cannot decode {self.segment.path}: {e}") from None
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if self.segment.from_s > 0:
            container.seek(int(self.segment.from_s / stream.time_base), stream=stream, backward=True)
        # Half a frame of slack: timestamps are rounded to the stream's time base.
        half_frame = 0.5 / float(stream.average_rate or self.config.fps)
        self._container = container
        self._frames = (f for f in container.decode(stream) if f.time is None or f.time >= self.segment.from_s - half_frame)
        self._end_s = None if self.segment.to_s is None else self.segment.to_s - half_frame

    def _next_frame(self):
        frame = next(self._frames, None)
        if frame is not None and self._end_s is not None and frame.time is not None and frame.time >= self._end_s:
            return None
        return frame

    def _grab(self):
        if self._frames is None:
            raise CameraDisconnectedError("replay closed")
        if self.finished:
            time.sleep(0.05)
            return None
        delay = self._next_due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next_due = max(self._next_due + 1.0 / self.config.fps, time.monotonic() - 1.0)
        frame = self._next_frame()
        if frame is None and self.loop:
            self._start_segment()
            frame = self._next_frame()
        if frame is None:
            self.finished = True
            return None
        w, h = self.resolution
        rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
        return np.ascontiguousarray(rgb), None

    def _close(self) -> None:
        container, self._container, self._frames = self._container, None, None
        if container is not None:
            container.close()
