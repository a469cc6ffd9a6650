"""Training samples: (current frames, future frames at a stride, action chunk, state) by random access.

Each episode's videos are decoded once, resized by swscale while converting from yuv, into a
uint8 array (T, h, w, 3) per camera, kept in memory or, with cache_dir, in .npy files opened
as memory maps (shared between DataLoader workers through the page cache).

Memory: frames x cameras x h x w x 3 bytes. 100 episodes of 300 frames, 3 cameras at 96x128:
100*300*3*96*128*3 = 3.3 GB; at the recorded 240x320, 21 GB: pick image_size for the model.
`estimated_cache_bytes()` says it before decoding anything.

With torch, wrap nothing: a DataLoader takes any object with __len__ and __getitem__.
Decode everything with preload() before forking DataLoader workers, or each worker decodes
(and holds) its own copy.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policy.episodes.reader import DatasetReader


@dataclass(frozen=True)
class SampleConfig:
    horizon: int = 16                  # H: actions per chunk (the paper's H = 16)
    future_frames: int = 8             # frames of imagined future per sample
    future_stride: int = 2             # one future frame every 2nd action: t+2, t+4, ..., t+16
    image_size: tuple[int, int] | dict[str, tuple[int, int]] | None = None  # (h, w); None = as recorded
    cameras: tuple[str, ...] | None = None   # None: every camera of the dataset
    cache_dir: str | None = None       # decode into .npy memory maps there instead of RAM

    def __post_init__(self):
        if self.horizon < 1 or self.future_frames < 0 or self.future_stride < 1:
            raise ValueError(f"horizon ({self.horizon}) and future_stride ({self.future_stride}) must be >= 1, "
                             f"future_frames ({self.future_frames}) >= 0")


class TrainingSamples:
    """Map-style dataset over every frame of the selected episodes.

    sample = samples[i] -> {
        "images": {camera: (h, w, 3) uint8}           frame t
        "future": {camera: (F, h, w, 3) uint8}        frames t + stride*(k+1), k < F (last frame repeated past the end)
        "future_is_pad": (F,) bool
        "actions": (H, action_dim) float32            actions t .. t+H-1 (last action repeated past the end)
        "action_is_pad": (H,) bool
        "state": (state_dim,) float32                 state at t
        "task": str, "episode_index": int, "frame_index": int }
    """

    def __init__(self, dataset: DatasetReader | str | Path, config: SampleConfig = SampleConfig(),
                 episodes: list[int] | None = None):
        self.reader = dataset if isinstance(dataset, DatasetReader) else DatasetReader(dataset)
        self.config = config
        self.cameras = list(config.cameras or self.reader.camera_names)
        for cam in self.cameras:
            if cam not in self.reader.spec.cameras:
                raise KeyError(f"camera {cam!r} not in the dataset; it has {self.reader.camera_names}")
        self.episodes = list(range(self.reader.num_episodes)) if episodes is None else list(episodes)
        for e in self.episodes:
            if not 0 <= e < self.reader.num_episodes:
                raise IndexError(f"episode {e} out of range: the dataset has {self.reader.num_episodes}")
        lengths = np.array([self.reader.episodes[e].length for e in self.episodes], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)])
        self._tables = {e: self.reader.episode_table(e) for e in self.episodes}   # small: state/action only
        self._frames: dict[int, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    # ---- sizes --------------------------------------------------------------------------------
    def image_size(self, camera: str) -> tuple[int, int]:
        size = self.config.image_size
        if size is None:
            return self.reader.spec.cameras[camera]
        if isinstance(size, dict):
            return tuple(size.get(camera, self.reader.spec.cameras[camera]))
        return tuple(size)

    def estimated_cache_bytes(self) -> int:
        frames = int(self._starts[-1])
        return sum(frames * h * w * 3 for h, w in map(self.image_size, self.cameras))

    @property
    def cache_bytes(self) -> int:
        """Bytes of decoded frames held now (memory maps count as their file size)."""
        return sum(a.nbytes for ep in self._frames.values() for a in ep.values())

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        return self.reader.stats

    def __len__(self) -> int:
        return int(self._starts[-1])

    # ---- decoding -----------------------------------------------------------------------------
    def _decode(self, episode: int, camera: str) -> np.ndarray:
        size = self.image_size(camera)
        if self.config.cache_dir is None:
            return self.reader.frames(episode, camera, size)
        path = Path(self.config.cache_dir) / f"ep{episode:06d}_{camera}_{size[0]}x{size[1]}.npy"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + ".partial.npy")
            np.save(tmp, self.reader.frames(episode, camera, size))
            tmp.replace(path)
        return np.load(path, mmap_mode="r")

    def episode_frames(self, episode: int) -> dict[str, np.ndarray]:
        """The decoded (T, h, w, 3) frames of every camera of one episode (decoded on first use)."""
        frames = self._frames.get(episode)
        if frames is None:
            with self._lock:
                frames = self._frames.get(episode)
                if frames is None:
                    frames = {cam: self._decode(episode, cam) for cam in self.cameras}
                    self._frames[episode] = frames
        return frames

    def preload(self, progress: bool = False) -> None:
        """Decode every selected episode now (before forking DataLoader workers)."""
        episodes = self.episodes
        if progress:
            from rich.progress import track
            episodes = track(episodes, description="decoding episodes")
        for e in episodes:
            self.episode_frames(e)

    # ---- samples ------------------------------------------------------------------------------
    def locate(self, i: int) -> tuple[int, int]:
        """Sample index -> (episode index, frame index)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range ({len(self)} samples)")
        i %= len(self)
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        return self.episodes[k], i - int(self._starts[k])

    def __getitem__(self, i: int) -> dict:
        episode, t = self.locate(int(i))
        table = self._tables[episode]
        n = len(table.state)
        cfg = self.config
        act_idx = t + np.arange(cfg.horizon)
        fut_idx = t + cfg.future_stride * np.arange(1, cfg.future_frames + 1)
        frames = self.episode_frames(episode)
        return {
            "images": {cam: np.asarray(frames[cam][t]) for cam in self.cameras},
            "future": {cam: np.asarray(frames[cam][np.minimum(fut_idx, n - 1)]) for cam in self.cameras},
            "future_is_pad": fut_idx > n - 1,
            "actions": table.action[np.minimum(act_idx, n - 1)],
            "action_is_pad": act_idx > n - 1,
            "state": table.state[t],
            "task": self.reader.episodes[episode].task,
            "episode_index": episode,
            "frame_index": t,
        }
