import pytest
import torch

from policy.model.config import get_preset
from policy.model.wam import EfficientWAM


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the 2 cores are shared with other jobs, and spinning OpenMP threads
    under oversubscription turn milliseconds into seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_model():
    """sim-tiny with non-zero output heads, so velocities (and any mismatch) are visible."""
    torch.manual_seed(0)
    model = EfficientWAM(get_preset("sim-tiny")).eval()
    torch.nn.init.normal_(model.video.head.head.weight, std=0.05)
    torch.nn.init.normal_(model.action.head.weight, std=0.05)
    return model


def inputs(cfg, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(cond=torch.randn(batch, *cfg.condition_latent_shape, generator=g),
                text=torch.randn(batch, cfg.text_len, cfg.text_dim, generator=g),
                state=torch.randn(batch, cfg.action_dim, generator=g))
