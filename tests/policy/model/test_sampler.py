import pytest
import torch

from policy.model.sampler import FlowSampler
from policy.model.wam import VideoKVCache
from tests.policy.model.conftest import inputs


def _noise(cfg, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, *cfg.future_latent_shape, generator=g),
            torch.randn(1, cfg.horizon, cfg.action_dim, generator=g))


@pytest.mark.parametrize("steps", [(2, 10), (3, 7)])
def test_cached_equals_uncached(tiny_model, steps):
    x, nz = inputs(tiny_model.cfg), _noise(tiny_model.cfg)
    cached = FlowSampler(tiny_model, steps).sample(**x, noise=nz)
    uncached = FlowSampler(tiny_model, steps, use_cache=False).sample(**x, noise=nz)
    assert uncached.video_recomputes == steps[1] - steps[0]
    torch.testing.assert_close(cached.actions, uncached.actions, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cached.future, uncached.future, atol=1e-5, rtol=1e-5)
    # and the steps matter: a dense schedule gives different actions
    dense = FlowSampler(tiny_model, (steps[1], steps[1])).sample(**x, noise=nz)
    assert (dense.actions - cached.actions).abs().max() > 1e-3


@pytest.mark.parametrize("steps", [(2, 10), (10, 10), (1, 4), (5, 10)])
def test_steps_set_the_number_of_joint_passes(tiny_model, steps):
    calls = {"joint": 0, "action": 0}
    joint, action_step = tiny_model.joint, tiny_model.action_step

    def count(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped

    tiny_model.joint, tiny_model.action_step = count("joint", joint), count("action", action_step)
    res = FlowSampler(tiny_model, steps).sample(**inputs(tiny_model.cfg))
    assert calls == {"joint": steps[0], "action": steps[1] - steps[0]}
    assert (res.joint_passes, res.action_passes) == (steps[0], steps[1] - steps[0])
    assert res.actions.shape == (1, tiny_model.cfg.horizon, tiny_model.cfg.action_dim)


def test_action_only_step_equals_the_joint_pass(tiny_model):
    cfg, x = tiny_model.cfg, inputs(tiny_model.cfg)
    fut, acts = _noise(cfg)
    t_v, t_a = torch.tensor([0.7]), torch.tensor([0.4])
    cache = VideoKVCache([], [])
    with torch.no_grad():
        kv = tiny_model.text_kv(x["text"])
        _, joint_vel = tiny_model.joint(fut, t_v, x["cond"], kv, acts, t_a, x["state"], cache)
        assert len(cache.keys) == cfg.video_layers
        alone = tiny_model.action_only(cache, acts, t_a, x["state"])
    torch.testing.assert_close(alone, joint_vel, atol=1e-5, rtol=1e-5)


def test_bad_steps_rejected(tiny_model):
    with pytest.raises(ValueError, match="T_v <= T_a"):
        FlowSampler(tiny_model, (5, 2))


def test_compiled_sampler_traces_both_passes_and_matches_eager(tiny_model):
    """compile=True: the joint passes and the action-only steps run as graphs (dynamo's "eager"
    backend here: the tracing, without code generation), one graph each, with the same numbers."""
    x, nz = inputs(tiny_model.cfg), _noise(tiny_model.cfg)
    eager = FlowSampler(tiny_model, (2, 6)).sample(**x, noise=nz)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = FlowSampler(tiny_model, (2, 6), compile=True, compile_backend="eager")
    res = compiled.sample(**x, noise=nz)
    torch.testing.assert_close(res.actions, eager.actions, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(res.future, eager.future, atol=1e-5, rtol=1e-5)
    again = compiled.sample(**x, noise=_noise(tiny_model.cfg, seed=2))      # no retrace for new data
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2
    assert not torch._dynamo.utils.counters["graph_break"], dict(torch._dynamo.utils.counters["graph_break"])
    assert (again.actions - res.actions).abs().max() > 1e-3


def test_inductor_cpu_compiled_sampler_matches_eager(tiny_model):
    """The real CPU code path of `--compile`: inductor generates C++ for both passes, with weight
    freezing and the C++ wrapper (FlowSampler's compiled()); real-time chunking's prefix too."""
    x, nz = inputs(tiny_model.cfg), _noise(tiny_model.cfg)
    prefix = torch.randn(1, 4, tiny_model.cfg.action_dim, generator=torch.Generator().manual_seed(3))
    eager = FlowSampler(tiny_model, (2, 10)).sample(**x, noise=nz, prefix=prefix)
    torch._dynamo.reset()
    compiled = FlowSampler(tiny_model, (2, 10), compile=True)
    res = compiled.sample(**x, noise=nz, prefix=prefix)
    torch.testing.assert_close(res.actions, eager.actions, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(res.future, eager.future, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(res.actions[:, :4], prefix)


def test_video_free_mode_runs_the_observation_once(tiny_model):
    """[0, T_a]: one pass over the condition tokens builds the cache; no future is imagined."""
    x, nz = inputs(tiny_model.cfg), _noise(tiny_model.cfg)
    cached = FlowSampler(tiny_model, (0, 5)).sample(**x, noise=nz)
    assert (cached.joint_passes, cached.action_passes) == (1, 4)
    uncached = FlowSampler(tiny_model, (0, 5), use_cache=False).sample(**x, noise=nz)
    torch.testing.assert_close(cached.actions, uncached.actions, atol=1e-5, rtol=1e-5)
    with_video = FlowSampler(tiny_model, (1, 5)).sample(**x, noise=nz)
    assert (with_video.actions - cached.actions).abs().max() > 1e-4


def test_fused_inference_path_equals_the_training_path(tiny_model):
    """Inference fuses q/k/v (one matmul, q/k normed and rotated together) and writes K/V into
    preallocated buffers; training runs the three Linears and concatenates. Same numbers."""
    cfg, x = tiny_model.cfg, inputs(tiny_model.cfg)
    fut, acts = _noise(cfg)
    t_v, t_a = torch.tensor([0.7]), torch.tensor([0.4])
    with torch.no_grad():
        kv = tiny_model.text_kv(x["text"])
        fused = tiny_model.joint(fut, t_v, x["cond"], kv, acts, t_a, x["state"], VideoKVCache())
    with torch.enable_grad():        # parameters require grad: the unfused training path
        plain = tiny_model.joint(fut, t_v, x["cond"], tiny_model.text_kv(x["text"]), acts, t_a, x["state"])
    torch.testing.assert_close(fused[0], plain[0].detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused[1], plain[1].detach(), atol=1e-5, rtol=1e-5)
    # a weight changed in place (an optimizer step, load_state_dict) rebuilds the fused weights
    with torch.no_grad():
        tiny_model.video.blocks[0].self_attn.v.weight.mul_(1.5)   # (k would be re-normed)
        again = tiny_model.joint(fut, t_v, x["cond"], kv, acts, t_a, x["state"], VideoKVCache())
    with torch.enable_grad():
        ref = tiny_model.joint(fut, t_v, x["cond"], kv, acts, t_a, x["state"])
    torch.testing.assert_close(again[1], ref[1].detach(), atol=1e-5, rtol=1e-5)
    assert (again[1] - fused[1]).abs().max() > 1e-4


@pytest.mark.parametrize("steps", [(2, 10), (0, 4)])
def test_sampling_loop_makes_no_tensor_from_host_data_and_never_syncs(tiny_model, monkeypatch, steps):
    """After the first chunk (which builds the RoPE tables and segment index once), a chunk makes
    no tensor from Python data (on CUDA: a blocking host-to-device copy) and reads nothing back
    (a host sync): what CUDA-graph capture needs."""
    x, kv_sampler = inputs(tiny_model.cfg), FlowSampler(tiny_model, steps)
    kv = kv_sampler.text_kv(x["text"])
    kv_sampler.sample(x["cond"], None, x["state"], text_kv=kv)          # warm-up: memoised tables

    def forbidden(name):
        def fail(*a, **k):
            raise AssertionError(f"{name} called inside the sampling loop")
        return fail
    for name in ("tensor", "as_tensor", "from_numpy"):
        monkeypatch.setattr(torch, name, forbidden(f"torch.{name}"))
    for name in ("item", "tolist", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbidden(f"Tensor.{name}"))
    res = kv_sampler.sample(x["cond"], None, x["state"], text_kv=kv)
    monkeypatch.undo()
    assert res.actions.shape == (1, tiny_model.cfg.horizon, tiny_model.cfg.action_dim)
