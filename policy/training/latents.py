"""Latents and text embeddings computed once, then indexed by every training step.

Once the codec is trained it is frozen, so the condition latent of every frame and the future
latents of every sample are encoded once (minutes on a CPU) instead of once per step. Text
embeddings are computed once per distinct instruction (with the scene prefix), like inference.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from policy.model.codec import LatentCodec, codec_device
from policy.model.config import WAMConfig
from policy.training.data import PreparedDataset


def to_unit(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(127.5).sub_(1.0)
    return x.movedim(-1, -3)


def clip_tensor(current: np.ndarray, future: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """current (B, h, w, 3), future (B, T, h, w, 3) uint8 -> (B, 3, h, w), (B, 3, T, h, w) in [-1, 1]."""
    return to_unit(current), to_unit(future).transpose(1, 2)


@dataclass
class LatentCache:
    cond: torch.Tensor      # (N, C, 1, h, w) normalised condition latents, one per frame
    future: torch.Tensor    # (N, C, k, h', w') normalised future latents of the sample at each frame

    def save(self, directory: Path, key: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "cond.npy", self.cond.cpu().numpy(), allow_pickle=False)
        np.save(directory / "future.npy", self.future.cpu().numpy(), allow_pickle=False)
        (directory / "key.txt").write_text(key)

    @classmethod
    def load(cls, directory: Path, key: str) -> "LatentCache | None":
        if not (directory / "key.txt").exists() or (directory / "key.txt").read_text() != key:
            return None
        return cls(torch.from_numpy(np.load(directory / "cond.npy")),
                   torch.from_numpy(np.load(directory / "future.npy")))


@torch.no_grad()
def encode_dataset(codec: LatentCodec, data: PreparedDataset, cfg: WAMConfig, batch: int = 256,
                   progress: bool = False, indices: np.ndarray | None = None) -> LatentCache:
    """Latents of every frame (or of `indices`: one rank's shard), on the CPU (the trainer moves
    them to its device once). Inputs go to the codec's device; results come back batch by batch."""
    rows = np.arange(len(data)) if indices is None else np.asarray(indices, np.int64)
    n = len(rows)
    dev = codec_device(codec)
    cond, future = [], []
    starts = range(0, n, batch)
    if progress:
        from rich.progress import track
        starts = track(starts, description="encoding latents")
    for s in starts:
        idx = rows[s:min(n, s + batch)]
        cond.append(codec.encode(to_unit(data.images[idx])[:, :, None].to(dev)).float().cpu())
        cur, fut = clip_tensor(data.small[idx], data.small[data.future_indices(idx, cfg.future_frames)])
        future.append(codec.encode_future(cur.to(dev), fut.to(dev)).float().cpu())
    if not cond:
        c, f = cfg.condition_latent_shape, cfg.future_latent_shape
        return LatentCache(torch.zeros(0, *c), torch.zeros(0, *f))
    return LatentCache(torch.cat(cond).float().contiguous(), torch.cat(future).float().contiguous())


def encode_sharded(codec: LatentCodec, data: PreparedDataset, cfg: WAMConfig, cache_dir: Path, key: str,
                   rank: int, world: int, barrier, progress: bool = False) -> LatentCache:
    """Under torchrun: rank r encodes frames r, r + world, ...; rank 0 assembles and saves the
    cache (same file as a single process writes); every rank then loads it."""
    import shutil
    part = cache_dir / f"part{rank}"
    encode_dataset(codec, data, cfg, progress=progress, indices=np.arange(rank, len(data), world)).save(part, key)
    barrier()
    if rank == 0:
        parts = [LatentCache.load(cache_dir / f"part{r}", key) for r in range(world)]
        cond = torch.empty(len(data), *parts[0].cond.shape[1:])
        future = torch.empty(len(data), *parts[0].future.shape[1:])
        for r, p in enumerate(parts):
            cond[r::world], future[r::world] = p.cond, p.future
        LatentCache(cond, future).save(cache_dir, key)
        for r in range(world):
            shutil.rmtree(cache_dir / f"part{r}", ignore_errors=True)
    barrier()
    return LatentCache.load(cache_dir, key)


@torch.no_grad()
def fit_latent_stats(codec, data: PreparedDataset, cfg: WAMConfig, samples: int = 512,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std of the raw latents (condition and future) of a random subset,
    computed on the codec's device, returned there (set_latent_stats keeps them there)."""
    rng = np.random.default_rng(seed)
    dev = codec_device(codec)
    idx = np.sort(rng.choice(len(data), size=min(samples, len(data)), replace=False))
    zs = [codec.encode_raw(to_unit(data.images[idx])[:, :, None].to(dev))]
    cur, fut = clip_tensor(data.small[idx], data.small[data.future_indices(idx, cfg.future_frames)])
    zs.append(codec.encode_raw(torch.cat([cur[:, :, None], fut], dim=2).to(dev))[:, :, 1:])
    flat = torch.cat([z.float().transpose(0, 1).flatten(1) for z in zs], dim=1)     # (C, everything)
    return flat.mean(1), flat.std(1)


GRAMMAR_PHRASINGS_PER_TASK = 320    # train-split phrasings per sim task (hardware/sim/instructions.py)


def instruction_groups(instructions: list[str],
                       grammar_per_task: int = GRAMMAR_PHRASINGS_PER_TASK) -> list[list[str]]:
    """For each recorded instruction, the texts it may be swapped with during training: when it
    is one of a sim task's own paraphrases, those paraphrases plus `grammar_per_task` phrasings of
    the instruction grammar's train split (deterministic per task; never a held-out synonym or
    template), so the policy learns how people talk, not five sentences; else itself."""
    try:
        from hardware.sim import instructions as grammar
        from hardware.sim.tasks import TASKS
    except Exception:       # no sim (e.g. real-robot data): no paraphrases to add
        return [[text] for text in instructions]
    per_task: dict[str, list[str]] = {}
    groups = []
    for text in instructions:
        task = next((t for t in TASKS.values() if text in t.instructions), None)
        if task is None:
            groups.append([text])
            continue
        if task.name not in per_task:
            group = list(task.instructions)
            if grammar_per_task and task.name in grammar.FRAMES:
                rng = np.random.default_rng(zlib.crc32(task.name.encode()))
                group += [p for p in grammar.phrasings(task.name, rng, "train", n=grammar_per_task, unique=True)
                          if p not in group]
            per_task[task.name] = group
        groups.append(per_task[task.name])
    return groups


@torch.no_grad()
def embed_instructions(encoder, prefix: str, groups: list[list[str]]) -> tuple[torch.Tensor, list[np.ndarray]]:
    """-> (embeddings (M, L, D) of every distinct text, per recorded instruction the row ids of its group)."""
    texts = sorted({t for g in groups for t in g})
    emb = torch.cat([encoder.encode([prefix + t]).float().cpu() for t in texts])
    rows = [np.array([texts.index(t) for t in g], np.int64) for g in groups]
    return emb, rows
