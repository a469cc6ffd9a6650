import pytest
import torch

from policy.model.config import get_preset
from policy.model.wam import EfficientWAM


@pytest.fixture(autouse=True)
def model_tests_on_one_thread(one_thread):
    """Every model test runs on one torch thread (tests/policy/conftest.py says why)."""


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
