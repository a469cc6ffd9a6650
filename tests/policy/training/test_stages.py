"""One backward step of every model stage, with the stage's own freezing, at the shipped sizes.

Stage 2 freezes the video expert and trains the action expert. The model's inference pack (whose
FFN overwrites activations in place) must then stay off: on 2026-12-06 it did not, and the first
stage-2 step of a real training run failed in backward. The failure needs activations of 16,384
elements or more (the in-place GELU's threshold), hence the shipped preset and a batch of 4.
"""
import pytest
import torch

from policy.model.config import get_preset
from policy.model.wam import EfficientWAM
from policy.training.stages import default_stages, flow_losses, param_groups
from tests.policy.model.conftest import inputs


def _batch(cfg, b=4, seed=0):
    """The model tests' observation inputs plus the flow targets a training batch carries."""
    g = torch.Generator().manual_seed(seed + 1)
    return {**inputs(cfg, b, seed), "future": torch.randn(b, *cfg.future_latent_shape, generator=g),
            "actions": torch.randn(b, cfg.horizon, cfg.action_dim, generator=g)}


# (stage, video-free step): stages 2-3 run 10% of their steps without future tokens; stage 1 never
@pytest.mark.parametrize("stage_name,video_free",
                         [("video", False), ("action", False), ("action", True), ("joint", False), ("joint", True)])
def test_every_stage_backpropagates_into_what_it_trains(stage_name, video_free):
    torch.manual_seed(0)
    model = EfficientWAM(get_preset("sim-tiny")).train()
    torch.nn.init.normal_(model.action.head.weight, std=0.05)        # zero-initialised heads pass
    torch.nn.init.normal_(model.video.head.head.weight, std=0.05)    # no gradient further in
    stage = next(s for s in default_stages(0, 1, 1, 1) if s.name == stage_name)
    groups = param_groups(model, stage)
    assert groups, "the stage trains something"
    loss_v, loss_a = flow_losses(model, _batch(model.cfg), shift=5.0, video_free=video_free)
    (stage.video_weight * loss_v + stage.action_weight * loss_a).backward()
    for part, lr in ((model.action, stage.lr_action), (model.video, stage.lr_video)):
        grads = [p.grad for p in part.blocks[0].parameters()]
        if lr > 0 and not (part is model.video and video_free):
            assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
        elif lr == 0:
            assert all(g is None for g in grads), "a frozen expert got gradients"


def test_joint_video_ratio_sets_stage_three_video_lr_only():
    paper = default_stages(1, 1, 1, 1, 1e-3)
    alike = default_stages(1, 1, 1, 1, 1e-3, joint_video_ratio=1.0)
    assert (paper[3].lr_video, paper[3].lr_action) == (2e-4, 1e-3), "the paper's 1/5 by default"
    assert (alike[3].lr_video, alike[3].lr_action) == (1e-3, 1e-3)
    assert paper[:3] == alike[:3], "stages 1-2 do not depend on it"


def test_start_weight_draws_first_chunks_more_often_and_uniform_by_default():
    """BatchSource.indices: with start_weight W the frames within the first chunk (cfg.horizon
    frames) of their episode are drawn W times as often as later ones; W = 1 is uniform."""
    import numpy as np

    from policy.training.data import PreparedDataset
    from policy.training.stages import BatchSource
    cfg = get_preset("sim-tiny")
    lengths = [40, 64, 25]                       # episodes of 40, 64 and 25 frames
    start = np.concatenate([np.full(n, s) for n, s in zip(lengths, np.cumsum([0] + lengths[:-1]))])
    end = np.concatenate([np.full(n, s + n) for n, s in zip(lengths, np.cumsum([0] + lengths[:-1]))])
    n = sum(lengths)
    data = PreparedDataset(images=np.zeros((n, 1, 1, 3), np.uint8), small=np.zeros((n, 1, 1, 3), np.uint8),
                           state=np.zeros((n, 14), np.float32), action=np.zeros((n, 14), np.float32),
                           episode_start=start, episode_end=end, instruction=np.zeros(n, np.int64),
                           instructions=["x"])
    first = np.arange(n) - start < cfg.horizon
    for weight in (1.0, 3.0):
        src = BatchSource(data, cfg, norm=None, start_weight=weight)
        idx = src.indices(np.random.default_rng(0), 200_000)
        assert idx.min() >= 0 and idx.max() < n and len(np.unique(idx)) == n, "every frame can be drawn"
        share = first[idx].mean()
        expect = weight * first.sum() / (weight * first.sum() + (~first).sum())
        assert abs(share - expect) < 0.01, (weight, share, expect)
