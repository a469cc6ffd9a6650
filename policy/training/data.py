"""The training set in memory: every frame decoded once into the model's T-layout, uint8.

Each episode's videos are decoded once at their recorded size and composed with the same
`compose_t_layout` that inference uses (policy.wam_runner), so training and inference see the
same pixels up to video compression. The future frames use the T-layout image shrunk to the
future's size with the resize the runner uses for previews. Epochs then cost array indexing only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from policy.episodes.reader import DatasetReader
from policy.model.config import WAMConfig
from policy.model.observation import T_LAYOUT_CAMERAS, compose_t_layout

STD_FLOOR = 1e-2     # dimensions that never move (an unused arm) must not blow up when normalised
_ARRAYS = ("images", "small", "state", "action", "episode_start", "episode_end", "instruction")


@dataclass
class PreparedDataset:
    images: np.ndarray          # (N, H, W, 3) uint8 T-layout at the model's condition size
    small: np.ndarray           # (N, H/f, W/f, 3) uint8 the same at the future's size
    state: np.ndarray           # (N, A) float32, raw units
    action: np.ndarray          # (N, A) float32, raw units
    episode_start: np.ndarray   # (N,) int64: index of the first frame of this frame's episode
    episode_end: np.ndarray     # (N,) int64: one past its last frame
    instruction: np.ndarray     # (N,) int64 index into `instructions`
    instructions: list[str]     # the task text of each episode, deduplicated

    def __len__(self) -> int:
        return len(self.state)

    @property
    def num_episodes(self) -> int:
        return len(np.unique(self.episode_start))

    def chunk_indices(self, idx: np.ndarray, horizon: int) -> np.ndarray:
        """(B,) frame indices -> (B, horizon) indices of actions t..t+H-1 (last repeated)."""
        return np.minimum(idx[:, None] + np.arange(horizon), self.episode_end[idx, None] - 1)

    def future_indices(self, idx: np.ndarray, frames: int, stride: int = 2) -> np.ndarray:
        """(B,) -> (B, frames) indices of t+stride, ..., t+stride*frames (last frame repeated)."""
        return np.minimum(idx[:, None] + stride * np.arange(1, frames + 1), self.episode_end[idx, None] - 1)

    def norm_stats(self) -> dict:
        """Mean/std of state and action, the JSON shape policy.wam_runner.NormStats reads."""
        def stats(x):
            return {"mean": x.mean(0).tolist(), "std": np.maximum(x.std(0), STD_FLOOR).tolist()}
        return {"state": stats(self.state.astype(np.float64)), "action": stats(self.action.astype(np.float64))}

    # ---- cache on disk (plain .npy: no pickle) --------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)
        (directory / "instructions.txt").write_text("\n".join(self.instructions) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "PreparedDataset":
        arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
        instructions = (directory / "instructions.txt").read_text().splitlines()
        return cls(**arrays, instructions=instructions)


def prepare_dataset(root: str | Path, cfg: WAMConfig, episodes: list[int] | None = None,
                    progress: bool = False) -> PreparedDataset:
    """Decode and compose every frame of the selected episodes of a recorded dataset."""
    reader = DatasetReader(root)
    missing = [c for c in T_LAYOUT_CAMERAS if c not in reader.camera_names]
    if missing:
        raise ValueError(f"{root}: the model's T-layout needs cameras {list(T_LAYOUT_CAMERAS)}, the dataset "
                         f"lacks {missing} (it has {reader.camera_names}); record with all three cameras")
    if reader.spec.action_dim != cfg.action_dim:
        raise ValueError(f"{root}: actions are {reader.spec.action_dim}-d, the model expects {cfg.action_dim}-d; "
                         "train a preset whose action_dim matches the robot")
    episodes = list(range(reader.num_episodes)) if episodes is None else episodes
    if not episodes:
        raise ValueError(f"{root} holds no episodes: generate demonstrations first "
                         "(python -m policy.episodes.generate --out DIR)")
    fh, fw = cfg.future_image_size
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _ARRAYS}
    instructions: list[str] = []
    offset = 0
    it = episodes
    if progress:
        from rich.progress import track
        it = track(episodes, description="decoding episodes")
    for e in it:
        table = reader.episode_table(e)
        n = len(table.state)
        views = {c: reader.frames(e, c) for c in T_LAYOUT_CAMERAS}
        n = min(n, *(len(v) for v in views.values()))
        images = np.stack([compose_t_layout({c: views[c][t] for c in T_LAYOUT_CAMERAS},
                                            cfg.image_height, cfg.image_width) for t in range(n)])
        small = np.stack([cv2.resize(img, (fw, fh), interpolation=cv2.INTER_AREA) for img in images])
        task = reader.episodes[e].task
        if task not in instructions:
            instructions.append(task)
        parts["images"].append(images)
        parts["small"].append(small)
        parts["state"].append(table.state[:n])
        parts["action"].append(table.action[:n])
        parts["episode_start"].append(np.full(n, offset, np.int64))
        parts["episode_end"].append(np.full(n, offset + n, np.int64))
        parts["instruction"].append(np.full(n, instructions.index(task), np.int64))
        offset += n
    return PreparedDataset(**{k: np.concatenate(v) for k, v in parts.items()}, instructions=instructions)


def load_or_prepare(root: str | Path, cfg: WAMConfig, cache: Path | None, progress: bool = False) -> PreparedDataset:
    """prepare_dataset, reusing `cache` when it was made from the same dataset at the same sizes."""
    key = f"{Path(root).resolve()}|{DatasetReader(root).num_episodes}|{cfg.image_height}x{cfg.image_width}" \
          f"|{cfg.future_downsample}"
    if cache is not None and (cache / "key.txt").exists() and (cache / "key.txt").read_text() == key:
        return PreparedDataset.load(cache)
    data = prepare_dataset(root, cfg, progress=progress)
    if cache is not None:
        data.save(cache)
        (cache / "key.txt").write_text(key)
    return data
