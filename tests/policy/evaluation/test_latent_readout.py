"""latent_readout tells a latent map that holds the target from one that does not.

Synthetic latents with a bright cell somewhere in a 16 x 12 grid: the target is that cell's
position, mirrored by the instruction (two "colours"). The readout must beat the instruction-mean
baseline by far; with the cell's position shuffled against the targets it must not."""
from __future__ import annotations

import numpy as np
import pytest

from policy.evaluation.latent_readout import readout


def _episodes(rng: np.random.Generator, n_episodes: int = 160, frames: int = 4, informative: bool = True):
    n = n_episodes * frames
    cond = rng.normal(0, 0.1, (n, 4, 1, 16, 12)).astype(np.float32)
    action = np.zeros((n, 14), np.float32)
    start = np.repeat(np.arange(n_episodes) * frames, frames)
    end = start + frames
    instruction = np.repeat(rng.integers(0, 2, n_episodes), frames)
    cells = rng.integers(0, [16, 12], (n_episodes, 2))
    targets = cells if informative else cells[rng.permutation(n_episodes)]
    for e in range(n_episodes):
        rows = slice(e * frames, (e + 1) * frames)
        cond[rows, 0, 0, cells[e, 0], cells[e, 1]] = 3.0
        sign = 1.0 if instruction[e * frames] == 0 else -1.0
        action[rows, 7:9] = sign * targets[e] / np.array([16.0, 12.0])
    return cond, action, start, end, instruction, np.unique(start)


@pytest.mark.parametrize("informative", [True, False])
def test_readout_finds_what_the_latents_hold(informative, one_thread):
    cond, action, start, end, instruction, episodes = _episodes(np.random.default_rng(0), informative=informative)
    report = readout(cond, action, start, end, instruction, episodes, frames=4, ahead=0, steps=200)
    assert report.episodes == 160 and report.samples == 640
    assert report.baseline > 0.3, "the targets vary within an instruction"
    if informative:
        assert report.val_error < 0.5 * report.baseline, report
    else:
        assert report.val_error > 0.8 * report.baseline, report
