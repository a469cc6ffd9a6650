"""The inference pack (weights laid out once for the sampling loop) gives the modules' numbers.

The reference is the same model with the pack switched off (EfficientWAM.inference_pack -> None),
i.e. the plain nn.Module path; a tiny random sim-tiny model, fixed seeds and noise.
"""
import pytest
import torch

from policy.model.precision import cast_for_inference
from policy.model.sampler import FlowSampler
from tests.policy.model.conftest import inputs


def _noise(cfg, batch, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, *cfg.future_latent_shape, generator=g),
            torch.randn(batch, cfg.horizon, cfg.action_dim, generator=g))


def _sample(model, steps, batch, packed: bool, use_cache=True, prefix=None):
    x, nz = inputs(model.cfg, batch, seed=2), _noise(model.cfg, batch)
    if not packed:
        model.inference_pack = lambda: None          # the plain modules (instance attribute)
    try:
        sampler = FlowSampler(model, steps, use_cache=use_cache)
        first = sampler.sample(**x, noise=nz)
        again = sampler.sample(**x, noise=nz, prefix=prefix)      # reused K/V buffers, RTC prefix
    finally:
        model.__dict__.pop("inference_pack", None)
    return first, again


@pytest.mark.parametrize("steps,batch", [((2, 10), 1), ((2, 10), 2), ((0, 4), 1), ((3, 7), 1), ((10, 10), 1)])
def test_packed_sampling_equals_the_module_path(tiny_model, steps, batch):
    prefix = torch.randn(batch, 5, tiny_model.cfg.action_dim, generator=torch.Generator().manual_seed(3))
    fast = _sample(tiny_model, steps, batch, True, prefix=prefix)
    ref = _sample(tiny_model, steps, batch, False, prefix=prefix)
    with torch.no_grad():
        assert tiny_model.inference_pack() is not None
    for f, r in zip(fast, ref):
        torch.testing.assert_close(f.actions, r.actions, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(f.future, r.future, atol=1e-5, rtol=1e-5)
        assert f.actions.abs().max() > 1e-2            # the heads are non-zero: a mismatch would show


def test_packed_uncached_reference_equals_the_module_path(tiny_model):
    fast = _sample(tiny_model, (2, 6), 1, True, use_cache=False)
    ref = _sample(tiny_model, (2, 6), 1, False, use_cache=False)
    torch.testing.assert_close(fast[0].actions, ref[0].actions, atol=1e-5, rtol=1e-5)


def test_pack_follows_in_place_updates_and_dtype_moves(tiny_model):
    with torch.no_grad():
        pack = tiny_model.inference_pack()
        assert tiny_model.inference_pack() is pack                   # cached while weights hold
        w = tiny_model.action.blocks[1].ffn[0].weight
        assert pack.action.blocks[1].ffn[0][0].stride() == (1, w.shape[0])   # column-major on CPU
        before = _sample(tiny_model, (2, 6), 1, True)[0].actions
        w.mul_(1.5)                                                  # an optimizer step / load_state_dict
        assert tiny_model.inference_pack() is not pack
    after = _sample(tiny_model, (2, 6), 1, True)[0].actions
    ref = _sample(tiny_model, (2, 6), 1, False)[0].actions
    torch.testing.assert_close(after, ref, atol=1e-5, rtol=1e-5)
    assert (after - before).abs().max() > 1e-4
    cast_for_inference(tiny_model, torch.bfloat16)                   # weights move: the pack follows
    with torch.no_grad():
        assert tiny_model.inference_pack().video[0].ffn[0][0].dtype == torch.bfloat16


def test_no_pack_while_training(tiny_model):
    with torch.enable_grad():
        assert tiny_model.inference_pack() is None          # autograd runs through the modules
    with torch.no_grad():
        assert tiny_model.inference_pack() is not None
