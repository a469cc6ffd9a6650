"""Every tensor on the model's device, by construction: inference and a training step of each
preset with the model and its inputs on the `meta` device.

A meta tensor mixed with a CPU tensor raises ("Tensor on device cpu is not on the expected device
meta!"), exactly like a CPU tensor reaching a CUDA model - so these CPU-only tests catch what would
fail at the first step on a GPU, at paper-1b size, in milliseconds and without memory. Generators
are checked separately (torch.randn(generator=cpu_gen, device="meta") does not raise).
Select with `pytest -k meta_device`.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from policy.model.codec import LatentCodec, TinyCodec
from policy.model.config import PRESETS, get_preset
from policy.model.flow import check_generator
from policy.model.sampler import FlowSampler
from policy.model.text import CachedText, TextEncoder
from policy.model.wam import EfficientWAM
from policy.serving.wam_runner import NormStats, WAMRunner
from policy.training.data import PreparedDataset
from policy.training.latents import LatentCache, encode_dataset, fit_latent_stats
from policy.training.stages import (BatchSource, CodecObjective, Normaliser, default_lr, default_stages,
                                    flow_losses, param_groups)

pytestmark = pytest.mark.usefixtures("one_thread")
META = torch.device("meta")


def meta_model(cfg) -> EfficientWAM:
    with META:
        return EfficientWAM(cfg)


def meta_inputs(cfg, batch=1):
    return dict(cond=torch.zeros(batch, *cfg.condition_latent_shape, device=META),
                text=torch.zeros(batch, cfg.text_len, cfg.text_dim, device=META),
                state=torch.zeros(batch, cfg.action_dim, device=META))


class HostText(TextEncoder):
    """A text encoder that, like the real ones, answers on the CPU: the runner must move it."""

    def __init__(self, cfg):
        self.dim, self.max_tokens = cfg.text_dim, cfg.text_len

    def encode(self, texts):
        return torch.zeros(len(texts), self.max_tokens, self.dim)


class MetaCodec(nn.Module, LatentCodec):
    """A codec that lives on meta and refuses inputs from anywhere else (stands in for the
    Wan2.2 VAE at paper size); encodes to CPU zeros like a codec whose results came back."""

    def __init__(self, cfg, out_device=META):
        super().__init__()
        self.latent_channels, self.spatial_factor = cfg.latent_channels, cfg.spatial_factor
        self.temporal_factor = cfg.temporal_factor
        self.weight = nn.Parameter(torch.zeros(1, device=META))
        self.out_device, self.seen = out_device, []

    def _latents(self, frames):
        assert frames.device == META, f"codec input on {frames.device}, the codec is on meta"
        self.seen.append(frames.device)
        b, _, t, h, w = frames.shape
        k = 1 + (t - 1) // self.temporal_factor
        return torch.zeros(b, self.latent_channels, k, h // self.spatial_factor, w // self.spatial_factor,
                           device=self.out_device)

    encode = encode_raw = _latents

    def decode(self, latents):
        raise NotImplementedError


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_meta_device_sampling_every_preset(preset):
    cfg = get_preset(preset)
    model = meta_model(cfg).eval()
    x = meta_inputs(cfg)
    for steps in ((2, 10), (0, 3)) if preset in ("sim-tiny", "paper-1b") else ((2, 3),):
        res = FlowSampler(model, steps, cfg.shift).sample(**x)
        assert res.actions.device == META and res.actions.shape == (1, cfg.horizon, cfg.action_dim)
        assert res.future.shape == (1, *cfg.future_latent_shape)
    # the uncached reference and precomputed text K/V run on the device too
    sampler = FlowSampler(model, (2, 4), cfg.shift, use_cache=False)
    kv = sampler.text_kv(x["text"])
    assert all(k.device == META for k, _ in kv)
    assert sampler.sample(x["cond"], None, x["state"], text_kv=kv).actions.device == META


def test_meta_device_condition_positions_live_with_the_model():
    cfg = get_preset("sim-tiny").replace(condition_positions=True)
    model = meta_model(cfg).eval()
    assert model.video.condition_positions.device == META
    res = FlowSampler(model, (2, 10), cfg.shift).sample(**meta_inputs(cfg))
    assert res.actions.device == META and res.actions.shape == (1, cfg.horizon, cfg.action_dim)


@pytest.mark.parametrize("preset", ["sim-tiny", "paper-1b"])
def test_meta_device_runner_moves_text_state_and_image(preset):
    cfg = get_preset(preset)
    codec = (TinyCodec(cfg.latent_channels, cfg.spatial_factor, cfg.temporal_factor).to(META)
             if cfg.codec == "tiny" else MetaCodec(cfg))
    runner = WAMRunner(meta_model(cfg).eval(), codec, CachedText(HostText(cfg)), NormStats.identity(cfg.action_dim),
                       preset, device="meta", steps=(2, 10))
    assert runner.generator is None            # no generator exists for meta; noise is drawn there
    image = np.zeros((cfg.image_height, cfg.image_width, 3), np.uint8)
    res = runner.sample(image, np.zeros(cfg.action_dim, np.float32), "put the red block on the plate")
    assert res.actions.device == META
    kv = runner.text_kv("put the red block on the plate")     # cached per instruction, on the device
    assert kv is runner.text_kv("put the red block on the plate") and kv[0][0].device == META


def test_meta_device_generators_must_live_on_the_sampling_device():
    cfg = get_preset("sim-tiny")
    model, x = meta_model(cfg).eval(), meta_inputs(cfg)
    cpu_gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="generator on cpu samples for tensors on meta"):
        FlowSampler(model, (2, 4)).sample(**x, generator=cpu_gen)
    batch = {"future": torch.zeros(2, *cfg.future_latent_shape, device=META),
             "actions": torch.zeros(2, cfg.horizon, cfg.action_dim, device=META), **meta_inputs(cfg, 2)}
    with pytest.raises(ValueError, match="generator on cpu"):
        flow_losses(model, batch, cfg.shift, cpu_gen)
    with pytest.raises(ValueError, match="generator on cpu"):
        flow_losses(model, batch, cfg.shift, cpu_gen, video_free=True)
    check_generator(cpu_gen, "cpu")
    check_generator(None, META)


def tiny_dataset(cfg, n=12) -> PreparedDataset:
    rng = np.random.default_rng(0)
    fh, fw = cfg.future_image_size
    return PreparedDataset(
        images=rng.integers(0, 256, (n, cfg.image_height, cfg.image_width, 3), dtype=np.uint8),
        small=rng.integers(0, 256, (n, fh, fw, 3), dtype=np.uint8),
        state=rng.standard_normal((n, cfg.action_dim)).astype(np.float32),
        action=rng.standard_normal((n, cfg.action_dim)).astype(np.float32),
        episode_start=np.zeros(n, np.int64), episode_end=np.full(n, n, np.int64),
        instruction=np.zeros(n, np.int64), instructions=["put the red block on the plate"])


def meta_source(cfg) -> BatchSource:
    data = tiny_dataset(cfg)
    source = BatchSource(data, cfg, Normaliser.from_stats(data.norm_stats()), state_noise=0.05, device=META)
    source.latents = LatentCache(torch.zeros(len(data), *cfg.condition_latent_shape, device=META),
                                 torch.zeros(len(data), *cfg.future_latent_shape, device=META))
    source.text, source.text_rows = torch.zeros(1, cfg.text_len, cfg.text_dim, device=META), [np.array([0])]
    return source


@pytest.mark.parametrize("preset", ["sim-tiny", "paper-1b"])
def test_meta_device_one_training_step_of_each_stage(preset):
    cfg = get_preset(preset)
    model, source = meta_model(cfg), meta_source(cfg)
    rng = np.random.default_rng(0)
    for stage in default_stages(1, 1, 1, 1, default_lr(preset)):
        if stage.name == "codec":
            if cfg.codec != "tiny":
                continue                    # the Wan2.2 VAE is not trained here
            codec = TinyCodec(cfg.latent_channels, cfg.spatial_factor, cfg.temporal_factor).to(META).train()
            objective = CodecObjective(codec, *source.mean_frames(), foreground=20.0)
            cond, clip = source.codec_batch(rng, 2)
            assert cond.device == clip.device == META
            loss = objective(cond, clip)
            params = list(codec.parameters())
        else:
            model.train()
            groups = param_groups(model, stage)
            batch = source.flow_batch(rng, 2)
            assert {v.device for v in batch.values()} == {META}
            for video_free in ((False, True) if stage.action_weight > 0 else (False,)):
                lv, la = flow_losses(model, batch, cfg.shift, None, video_free=video_free)
                loss = stage.video_weight * lv + stage.action_weight * la
            params = [p for g in groups for p in g["params"]]
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-3)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        assert loss.device == META


def test_meta_device_latent_encoding_feeds_the_codec_on_its_device():
    cfg = get_preset("paper-1b")
    data = tiny_dataset(cfg, n=4)
    codec = MetaCodec(cfg, out_device=torch.device("cpu"))     # results "came back" to the host
    latents = encode_dataset(codec, data, cfg, batch=2)
    assert latents.cond.device.type == "cpu" and latents.cond.shape == (4, *cfg.condition_latent_shape)
    assert latents.future.shape == (4, *cfg.future_latent_shape)
    mean, std = fit_latent_stats(codec, data, cfg, samples=4)
    assert mean.shape == (cfg.latent_channels,) and set(codec.seen) == {META}


def test_meta_device_paper_lr_defaults():
    assert default_lr("paper-1b") == default_lr("paper-1b-dense") == 5e-5
    assert default_lr("sim-tiny") == 1e-3
    codec, video, action, joint = default_stages(0, 1, 1, 1, default_lr("paper-1b"))
    assert video.lr_video == 5e-5 and action.lr_action == 5e-5
    assert (joint.lr_video, joint.lr_action) == (1e-5, 5e-5)


def test_sharded_latent_encoding_assembles_the_single_process_cache(tmp_path):
    """torchrun ranks encode strided shards; rank 0 assembles the same cache one process writes
    (ranks simulated in turn: rank 1 first, then rank 0 assembles)."""
    from policy.training.latents import encode_sharded
    cfg = get_preset("sim-tiny")
    data = tiny_dataset(cfg, n=7)
    torch.manual_seed(0)
    codec = TinyCodec(cfg.latent_channels, cfg.spatial_factor, cfg.temporal_factor).eval()
    whole = encode_dataset(codec, data, cfg, batch=3)
    assert encode_sharded(codec, data, cfg, tmp_path, "k", 1, 2, lambda: None) is None   # not assembled yet
    merged = encode_sharded(codec, data, cfg, tmp_path, "k", 0, 2, lambda: None)
    torch.testing.assert_close(merged.cond, whole.cond)
    torch.testing.assert_close(merged.future, whole.future)
    assert not (tmp_path / "part0").exists() and not (tmp_path / "part1").exists()
