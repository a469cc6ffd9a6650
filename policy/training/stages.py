"""The training stages (PAPER.md "Training") and what one step of each computes.

  codec  : sim-tiny's latent codec, pixel reconstruction (before stage 1; frozen afterwards)
  video  : stage 1, video expert only, video flow matching
  action : stage 2, video frozen, action expert trained; 1.0 action + 0.01 video loss
  joint  : stage 3, both trained (video LR 5x below the action LR); same loss weights
Video and action timesteps are drawn independently: that is what lets inference run [T_v, T_a].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from policy.model.codec import TinyCodec, foreground_weight
from policy.model.config import WAMConfig
from policy.model.flow import add_noise, randn, sample_timesteps, velocity_target
from policy.training.data import PreparedDataset
from policy.training.latents import LatentCache, clip_tensor, to_unit

STAGE_NAMES = ("codec", "video", "action", "joint")


@dataclass
class StageConfig:
    name: str                      # one of STAGE_NAMES
    steps: int
    lr_video: float = 0.0          # 0 = frozen (codec stage: the codec's LR)
    lr_action: float = 0.0
    video_weight: float = 1.0
    action_weight: float = 1.0

    def __post_init__(self):
        if self.name not in STAGE_NAMES:
            raise ValueError(f"unknown stage {self.name!r}; stages are {STAGE_NAMES}")
        if self.steps < 0:
            raise ValueError(f"stage {self.name}: steps must be >= 0, got {self.steps}")


# Peak action LR per preset family. The paper (1B params, batch 128): 5e-5 for stages 1-2 and
# 1e-5 video / 5e-5 action for stage 3, which is default_stages(lr=5e-5) exactly. sim-tiny (~4M
# params trained for minutes on a CPU) wants ~1e-3 with the same ratios.
PRESET_LR = {"paper-1b": 5e-5, "sim-tiny": 1e-3}


def default_lr(preset: str) -> float:
    """The peak LR of a preset (its family: 'paper-1b-dense' -> 'paper-1b')."""
    for family, lr in PRESET_LR.items():
        if preset == family or preset.startswith(family + "-"):
            return lr
    return PRESET_LR["sim-tiny"] if preset.startswith("sim") else PRESET_LR["paper-1b"]


def default_stages(codec: int, video: int, action: int, joint: int, lr: float = 1e-3,
                   joint_video_ratio: float = 0.2) -> list[StageConfig]:
    """The paper's recipe with our step counts; `lr` is the peak action LR (default_lr(preset):
    paper 5e-5 -> stage 1 video 5e-5, stage 2 action 5e-5, stage 3 video 1e-5 / action 5e-5);
    `joint_video_ratio`: stage 3's video LR over its action LR (the paper's 1/5)."""
    return [StageConfig("codec", codec, lr_video=2e-3),
            StageConfig("video", video, lr_video=lr, video_weight=1.0, action_weight=0.0),
            StageConfig("action", action, lr_action=lr, video_weight=0.01, action_weight=1.0),
            StageConfig("joint", joint, lr_video=lr * joint_video_ratio, lr_action=lr, video_weight=0.01,
                        action_weight=1.0)]


def lr_factor(step: int, total: int, warmup: int = 50, floor: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to `floor` x peak."""
    warmup = min(warmup, max(1, total // 10))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model, stage: StageConfig) -> list[dict]:
    """Freeze what the stage does not train; AdamW groups with each expert's LR."""
    groups = []
    for part, lr in ((model.video, stage.lr_video), (model.action, stage.lr_action)):
        part.requires_grad_(lr > 0)
        if lr > 0:
            groups.append({"params": [p for p in part.parameters()], "lr": lr, "base_lr": lr})
    return groups


# ---- batches --------------------------------------------------------------------------------
@dataclass
class Normaliser:
    state_mean: torch.Tensor
    state_std: torch.Tensor
    action_mean: torch.Tensor
    action_std: torch.Tensor

    @classmethod
    def from_stats(cls, stats: dict) -> "Normaliser":
        t = lambda part, k: torch.tensor(stats[part][k], dtype=torch.float32)  # noqa: E731
        return cls(t("state", "mean"), t("state", "std"), t("action", "mean"), t("action", "std"))


@dataclass
class BatchSource:
    """Random training batches from the in-memory dataset, latents and text embeddings."""
    data: PreparedDataset
    cfg: WAMConfig
    norm: Normaliser
    latents: LatentCache | None = None
    text: torch.Tensor | None = None           # (M, L, D) embeddings of every distinct text
    text_rows: list[np.ndarray] | None = None  # per recorded instruction: rows it may use
    state_noise: float = 0.0                   # std of noise added to the normalised state input
    start_weight: float = 1.0                  # how much more often a frame of an episode's first chunk is drawn
    device: torch.device | str = "cpu"         # where batches go (latents and text live there already)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A host tensor -> the training device, once: pinned and asynchronous on CUDA."""
        dev = torch.device(self.device)
        if x.device == dev:
            return x
        if dev.type == "cuda" and x.device.type == "cpu":
            return x.pin_memory().to(dev, non_blocking=True)
        return x.to(dev)

    def _gather(self, table: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        """table[idx] with the index made on the table's device (no host index per lookup)."""
        return table.index_select(0, torch.from_numpy(np.asarray(idx, np.int64)).to(table.device))

    def indices(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """Frames to train on, uniform over the dataset, or with start_weight: the frames within
        the first chunk (cfg.horizon frames) of their episode drawn that many times as often.
        Why: the first chunk is the one the picture alone decides (the arm rests in the same
        pose at every start, so only the image says where the named block is); later frames
        are nearly told by the state, and a uniform draw spends most steps on them."""
        if self.start_weight == 1.0:
            return rng.integers(0, len(self.data), size=batch)
        return np.minimum(np.searchsorted(self._start_cdf, rng.random(batch), side="right"), len(self.data) - 1)

    @cached_property
    def _start_cdf(self) -> np.ndarray:
        """Cumulative draw weights of the frames under start_weight, made once."""
        first = np.arange(len(self.data)) - self.data.episode_start < self.cfg.horizon
        cdf = np.cumsum(np.where(first, self.start_weight, 1.0))
        return cdf / cdf[-1]

    def codec_batch(self, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels for the codec: condition frames (B, 3, 1, H, W) and future clips at the
        future's size (B, 3, 1 + F, h, w) laid out as the codec encodes them."""
        idx = self.indices(rng, batch)
        cond = to_unit(self.data.images[idx])[:, :, None]
        cur, fut = clip_tensor(self.data.small[idx], self.data.small[self.data.future_indices(idx, self.cfg.future_frames)])
        return self.to_device(cond), self.to_device(torch.cat([cur[:, :, None], fut], dim=2))

    def mean_frames(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The dataset's mean condition frame (1, 3, 1, H, W) and mean future-size frame
        (1, 3, 1, h, w) in [-1, 1]: the background the codec's foreground weighting compares to."""
        def mean(images: np.ndarray) -> torch.Tensor:
            total = np.zeros(images.shape[1:], np.float64)
            for start in range(0, len(images), 4096):      # chunked: no float copy of the dataset
                total += images[start:start + 4096].sum(axis=0, dtype=np.float64)
            return to_unit((total / len(images)).astype(np.float32)[None])[:, :, None]
        return self.to_device(mean(self.data.images)), self.to_device(mean(self.data.small))

    def flow_batch(self, rng: np.random.Generator, batch: int) -> dict[str, torch.Tensor]:
        if self.latents is None or self.text is None:
            raise RuntimeError("flow stages need the latent cache and text embeddings: train the codec first")
        idx = self.indices(rng, batch)
        d, n = self.data, self.norm
        actions = (torch.from_numpy(d.action[d.chunk_indices(idx, self.cfg.horizon)]) - n.action_mean) / n.action_std
        state = (torch.from_numpy(d.state[idx]) - n.state_mean) / n.state_std
        if self.state_noise > 0:
            state = state + self.state_noise * torch.from_numpy(rng.standard_normal(state.shape).astype(np.float32))
        rows = [self.text_rows[i] for i in d.instruction[idx]]
        text_ids = np.array([r[rng.integers(len(r))] for r in rows], np.int64)
        # host-made tensors move once; latents and text are gathered where they live, then moved
        # (a no-op when they were put on the device up front, as the Trainer does)
        return {"cond": self.to_device(self._gather(self.latents.cond, idx)),
                "future": self.to_device(self._gather(self.latents.future, idx)),
                "actions": self.to_device(actions.float()), "state": self.to_device(state.float()),
                "text": self.to_device(self._gather(self.text, text_ids))}


# ---- losses ---------------------------------------------------------------------------------
class CodecObjective(nn.Module):
    """forward() = the codec's reconstruction loss on condition frames and future clips (DDP calls
    forward), weighted towards pixels that differ from the dataset's mean frame (codec.foreground_weight)."""

    def __init__(self, codec: TinyCodec, cond_background: torch.Tensor, clip_background: torch.Tensor,
                 foreground: float):
        super().__init__()
        self.codec, self.foreground = codec, foreground
        self.register_buffer("cond_background", cond_background)    # (1, 3, 1, H, W) in [-1, 1]
        self.register_buffer("clip_background", clip_background)    # (1, 3, 1, h, w)

    def forward(self, cond: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
        if self.foreground <= 0:
            return self.codec.reconstruction_loss(cond) + self.codec.reconstruction_loss(clip)
        return (self.codec.reconstruction_loss(cond, foreground_weight(cond, self.cond_background, self.foreground))
                + self.codec.reconstruction_loss(clip, foreground_weight(clip, self.clip_background, self.foreground)))


def flow_losses(model, batch: dict[str, torch.Tensor], shift: float,
                generator: torch.Generator | None = None,
                video_free: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow-matching MSE of the future latents and of the action chunk, with independent timesteps.

    video_free: a step without future tokens (the sampler's [0, T_a] mode), video loss 0."""
    future, actions = batch["future"], batch["actions"]
    if video_free:
        t_a = sample_timesteps(actions.shape[0], shift, actions.device, generator)
        n_a = randn(actions.shape, actions.device, generator)
        _, vel_a = model(None, add_noise(actions, n_a, t_a), None, t_a, batch["cond"], batch["text"], batch["state"])
        return torch.zeros((), device=actions.device), F.mse_loss(vel_a.float(), velocity_target(actions, n_a))
    b = future.shape[0]
    t_v = sample_timesteps(b, shift, future.device, generator)
    t_a = sample_timesteps(b, shift, future.device, generator)      # independent of t_v
    n_v = randn(future.shape, future.device, generator)
    n_a = randn(actions.shape, actions.device, generator)
    vel_v, vel_a = model(add_noise(future, n_v, t_v), add_noise(actions, n_a, t_a), t_v, t_a,
                         batch["cond"], batch["text"], batch["state"])
    return (F.mse_loss(vel_v.float(), velocity_target(future, n_v)),
            F.mse_loss(vel_a.float(), velocity_target(actions, n_a)))
