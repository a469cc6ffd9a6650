"""The training set: every frame decoded once into the model's T-layout, uint8.

Each episode's videos are decoded once at their recorded size and composed with the same
`compose_t_layout` that inference uses (policy.serving.wam_runner), so training and inference see the
same pixels up to video compression. The future frames use the T-layout image shrunk to the
future's size with the resize the runner uses for previews. Epochs then cost array indexing only.

With a cache directory (what policy.train uses) the pixels live on disk: each dataset root is
decoded, saved and dropped in turn, the roots are joined into the cache by streaming, and the cache
is read back with its pixel arrays memory-mapped. So RAM holds one root's pixels at most while
preparing, and only the pages a stage reads while training (the flow stages train on cached
latents and read pixels only to encode them once).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import shutil

import cv2
import numpy as np

from policy.episodes.reader import DatasetReader
from policy.model.config import WAMConfig
from policy.model.observation import T_LAYOUT_CAMERAS, compose_t_layout

STD_FLOOR = 1e-2     # dimensions that never move (an unused arm) must not blow up when normalised
_ARRAYS = ("images", "small", "state", "action", "episode_start", "episode_end", "instruction")
_PIXELS = ("images", "small")   # memory-mapped when loaded from a cache


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
        """Mean/std of state and action, the JSON shape policy.serving.wam_runner.NormStats reads."""
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
        """A saved dataset; its pixel arrays memory-mapped read-only, the rest in RAM."""
        arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False,
                                mmap_mode="r" if name in _PIXELS else None) for name in _ARRAYS}
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


def dataset_roots(data: str | Path) -> list[Path]:
    """'A' or 'A,B' -> [A, B]: training may combine datasets recorded separately (e.g. generated
    in parallel per task), as long as they share the robot and the cameras."""
    roots = [Path(r.strip()) for r in str(data).split(",") if r.strip()]
    if not roots:
        raise ValueError("no dataset given: pass --data DIR (or DIR1,DIR2 to combine datasets)")
    return roots


def _joined_index(parts: list[PreparedDataset]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The episode bounds and instruction indices of several datasets joined in order (frame
    indices shifted, instruction lists merged), and the merged instruction list."""
    instructions: list[str] = []
    arrays: dict[str, list[np.ndarray]] = {"episode_start": [], "episode_end": [], "instruction": []}
    offset = 0
    for part in parts:
        remap = np.array([_index_of(instructions, text) for text in part.instructions], np.int64)
        arrays["episode_start"].append(part.episode_start + offset)
        arrays["episode_end"].append(part.episode_end + offset)
        arrays["instruction"].append(remap[part.instruction])
        offset += len(part)
    return {k: np.concatenate(v) for k, v in arrays.items()}, instructions


def concatenate(parts: list[PreparedDataset]) -> PreparedDataset:
    """One PreparedDataset of several, in RAM."""
    index, instructions = _joined_index(parts)
    frames = {name: np.concatenate([getattr(p, name) for p in parts]) for name in ("images", "small", "state", "action")}
    return PreparedDataset(**frames, **index, instructions=instructions)


def save_concatenation(parts: list[PreparedDataset], directory: Path) -> None:
    """What concatenate(parts).save(directory) writes, with the pixels streamed part by part into
    the files (np.lib.format.open_memmap) instead of joined in RAM first."""
    directory.mkdir(parents=True, exist_ok=True)
    index, instructions = _joined_index(parts)
    for name, array in index.items():
        np.save(directory / f"{name}.npy", array, allow_pickle=False)
    for name in ("state", "action"):
        np.save(directory / f"{name}.npy", np.concatenate([getattr(p, name) for p in parts]), allow_pickle=False)
    for name in _PIXELS:
        first = getattr(parts[0], name)
        out = np.lib.format.open_memmap(directory / f"{name}.npy", mode="w+", dtype=first.dtype,
                                        shape=(sum(len(p) for p in parts), *first.shape[1:]))
        start = 0
        for part in parts:
            out[start:start + len(part)] = getattr(part, name)
            start += len(part)
        out.flush()
        del out
    (directory / "instructions.txt").write_text("\n".join(instructions) + "\n")


def _index_of(items: list[str], item: str) -> int:
    if item not in items:
        items.append(item)
    return items.index(item)


def load_or_prepare(data: str | Path, cfg: WAMConfig, cache: Path | None, progress: bool = False) -> PreparedDataset:
    """prepare_dataset of every root in `data` ('A' or 'A,B'), reusing `cache` when it was made
    from the same datasets at the same sizes."""
    roots = dataset_roots(data)
    key = ";".join(f"{r.resolve()}|{DatasetReader(r).num_episodes}" for r in roots) + \
        f"|{cfg.image_height}x{cfg.image_width}|{cfg.future_downsample}"
    if cache is None:
        parts = [prepare_dataset(r, cfg, progress=progress) for r in roots]
        return parts[0] if len(parts) == 1 else concatenate(parts)
    if (cache / "key.txt").exists() and (cache / "key.txt").read_text() == key:
        return PreparedDataset.load(cache)
    (cache / "key.txt").unlink(missing_ok=True)      # a half-rewritten cache must never match a key
    for old in cache.glob("*.npy"):                  # new files, not truncated ones under a live memmap
        old.unlink()
    staging = cache / "parts"
    shutil.rmtree(staging, ignore_errors=True)
    for i, root in enumerate(roots):                 # one root's pixels in RAM at a time
        prepare_dataset(root, cfg, progress=progress).save(staging / str(i))
    save_concatenation([PreparedDataset.load(staging / str(i)) for i in range(len(roots))], cache)
    shutil.rmtree(staging)
    (cache / "key.txt").write_text(key)
    return PreparedDataset.load(cache)
