"""Is what the policy must find in the picture there in its latents? A supervised readout.

    python -m policy.evaluation.latent_readout --run runs/ft-classic --match red,blue

Reads a training run's caches (RUN/cache/frames: actions, episodes, instructions; RUN/cache/
latents/cond.npy: the codec's condition latents of every frame, exactly what the policy reads)
and fits a small CNN from the first `--frames` condition latents of each episode, with the
instruction as an input, to the action `--ahead` steps later (by default the right arm's joints
at the end of the first chunk: where the first chunk must reach, what grounding_probe compares).
Episodes are split 90 / 10; it reports the held-out error next to the instruction-mean baseline,
the best anything that ignores the picture can do, in the probe's units (rad summed over joints).
  readout near the baseline   the codec (or the input size) lost the object: fix the input
  readout far below it, and the policy's probe error near it: the input is fine; the policy's
                              fit is what is missing (its architecture, steps or recipe)
Plain regression, not the policy's flow matching: a bound on what the latents hold, not a model
to serve. One JSON line at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from hardware.aloha import RIGHT_ARM_JOINTS


@dataclass
class ReadoutReport:
    episodes: int
    samples: int
    baseline: float        # held-out error of each instruction's mean target (rad, summed over joints)
    train_error: float     # the readout's error on (up to 2,000 of) its training samples
    val_error: float       # ... on the held-out episodes


class ReadoutNet(nn.Module):
    """Convolutions at the latent grid, the instruction broadcast to every cell, then a Linear
    over the flattened map (which knows where each cell is)."""

    def __init__(self, channels: int, height: int, width: int, instructions: int, outputs: int):
        super().__init__()
        self.instruction = nn.Embedding(instructions, 8)
        self.conv = nn.Sequential(
            nn.Conv2d(channels + 8, 64, 3, padding=1), nn.GELU(), nn.Conv2d(64, 64, 3, padding=1), nn.GELU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.GELU(), nn.Flatten())
        cells = ((height + 1) // 2) * ((width + 1) // 2)
        self.head = nn.Sequential(nn.Linear(64 * cells, 256), nn.GELU(), nn.Linear(256, outputs))

    def forward(self, latents: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        b, _, h, w = latents.shape
        text = self.instruction(instruction)[:, :, None, None].expand(b, -1, h, w)
        return self.head(self.conv(torch.cat([latents, text], dim=1)))


def readout(cond: np.ndarray, action: np.ndarray, episode_start: np.ndarray, episode_end: np.ndarray,
            instruction: np.ndarray, episodes: np.ndarray, frames: int = 8, ahead: int = 15,
            joints: slice = RIGHT_ARM_JOINTS, steps: int = 2000, seed: int = 0) -> ReadoutReport:
    """cond (N, C, 1, h, w) latents, action (N, A), per-frame episode bounds and instruction index;
    `episodes`: the first-frame indices of the episodes to use."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(episodes)
    held_out = set(order[: max(1, len(order) // 10)].tolist())
    rows = [(s + k, s in held_out) for s in order for k in range(min(frames, episode_end[s] - s))]
    idx = np.array([r for r, _ in rows])
    val = torch.tensor([v for _, v in rows])
    target_rows = np.minimum(idx + ahead, episode_end[idx] - 1)
    x = torch.from_numpy(cond[idx][:, :, 0]).float()          # one gather, also from a memory map
    y = torch.from_numpy(action[target_rows][:, joints]).float()
    ins = torch.from_numpy(instruction[idx]).long()

    # the instruction-mean baseline, fitted on the training episodes
    means = {int(i): y[~val & (ins == i)].mean(0) for i in ins.unique() if (~val & (ins == i)).any()}
    fallback = y[~val].mean(0)
    base = torch.stack([means.get(int(i), fallback) for i in ins[val]])
    baseline = float((base - y[val]).abs().sum(1).mean())

    torch.manual_seed(seed)
    mu, sd = y[~val].mean(0), y[~val].std(0).clamp_min(1e-3)
    net = ReadoutNet(x.shape[1], x.shape[2], x.shape[3], int(instruction.max()) + 1, y.shape[1])
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    train = torch.nonzero(~val).squeeze(1)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        b = train[torch.randint(len(train), (128,), generator=g)]
        loss = ((net(x[b], ins[b]) - (y[b] - mu) / sd) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        def error(rows: torch.Tensor) -> float:
            return float(((net(x[rows], ins[rows]) * sd + mu) - y[rows]).abs().sum(1).mean())
        val_rows = torch.nonzero(val).squeeze(1)
        return ReadoutReport(len(order), len(idx), baseline, error(train[:2000]), error(val_rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a policy.train run directory (its cache/ is read)")
    p.add_argument("--match", default="", help="only episodes whose instruction contains one of these "
                   "comma-separated words (e.g. red,blue: the place tasks); default all")
    p.add_argument("--frames", type=int, default=8, help="first frames of each episode to read from")
    p.add_argument("--ahead", type=int, default=15, help="the target action: this many steps later")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    frames, latents = Path(a.run) / "cache" / "frames", Path(a.run) / "cache" / "latents" / "cond.npy"
    if not (frames / "episode_start.npy").exists() or not latents.exists():
        p.error(f"--run {a.run}: no cache/frames or cache/latents/cond.npy there; give a run directory "
                "whose training got past 'encoding latents'")
    torch.set_num_threads(a.threads)
    load = lambda name: np.load(frames / f"{name}.npy", mmap_mode="r")  # noqa: E731
    start, end, instruction = load("episode_start"), load("episode_end"), load("instruction")
    texts = (frames / "instructions.txt").read_text().splitlines()
    words = [w for w in a.match.split(",") if w]
    keep = [i for i, t in enumerate(texts) if not words or any(w in t.split() for w in words)]
    if not keep:
        p.error(f"--match {a.match}: no instruction of this run contains those words")
    episodes = np.unique(np.asarray(start)[np.isin(instruction, keep)])
    report = readout(np.load(latents, mmap_mode="r"), load("action"), np.asarray(start), np.asarray(end),
                     np.asarray(instruction), episodes, a.frames, a.ahead, steps=a.steps)
    print(f"{a.run}: {report.episodes} episodes; held-out error {report.val_error:.3f} rad (train "
          f"{report.train_error:.3f}) against {report.baseline:.3f} for the instruction's mean target")
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
