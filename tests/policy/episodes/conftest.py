"""Tiny datasets for the episode tests: 64x48 frames, a few dozen frames per episode."""
import numpy as np
import pytest

from policy.episodes import DatasetSpec, DatasetWriter
from policy.episodes.synthetic import SyntheticFrames, synthetic_spec, synthetic_state

H, W = 48, 64


@pytest.fixture
def spec() -> DatasetSpec:
    return synthetic_spec(H, W)


@pytest.fixture
def frames() -> SyntheticFrames:
    return SyntheticFrames(H, W)


def record_episode(writer: DatasetWriter, n: int, task: str = "lift the cube", episode_seed: int = 0,
                   save: bool = True) -> int | None:
    gen = SyntheticFrames(H, W, len(writer.spec.cameras))
    writer.start_episode(task)
    for t in range(n):
        images = {cam: gen.frame(t, i) for i, cam in enumerate(writer.spec.cameras)}
        writer.add_frame(images, synthetic_state(t, episode=episode_seed), synthetic_state(t + 1, episode=episode_seed),
                         timestamp=100.0 + t / writer.spec.fps)
    return writer.save_episode() if save else None


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
