import torch

from policy.model.config import get_preset
from policy.model.wam import EfficientWAM
from tests.policy.model.conftest import inputs


def _forward(model, x, state=None, actions=None, future=None):
    cfg = model.cfg
    g = torch.Generator().manual_seed(5)
    future = torch.randn(2, *cfg.future_latent_shape, generator=g) if future is None else future
    actions = torch.randn(2, cfg.horizon, cfg.action_dim, generator=g) if actions is None else actions
    return model(future, actions, torch.tensor([0.3, 0.9]), torch.tensor([0.5, 0.1]), x["cond"],
                 x["text"], x["state"] if state is None else state)


def test_training_forward_shapes_and_gradients(tiny_model):
    cfg, x = tiny_model.cfg, inputs(tiny_model.cfg, batch=2)
    tiny_model.train()
    v_vel, a_vel = _forward(tiny_model, x)
    assert v_vel.shape == (2, *cfg.future_latent_shape)
    assert a_vel.shape == (2, cfg.horizon, cfg.action_dim)
    (v_vel.square().mean() + a_vel.square().mean()).backward()
    assert tiny_model.video.blocks[0].self_attn.q.weight.grad.abs().sum() > 0
    assert tiny_model.action.blocks[0].self_attn.q.weight.grad.abs().sum() > 0
    assert tiny_model.action.state_embedding[0].weight.grad.abs().sum() > 0


def test_condition_positions_tell_tokens_apart_and_reach_the_actions(tiny_model):
    """Absolute condition positions (config.condition_positions): a model may gain them over
    weights without them (policy.train --init); they start distinct for every condition token,
    receive gradient from the action loss alone, and change the actions when they change."""
    model = EfficientWAM(tiny_model.cfg.replace(condition_positions=True)).eval()
    missing, unexpected = model.load_state_dict(tiny_model.state_dict(), strict=False)
    assert missing == ["video.condition_positions"] and not unexpected
    table = model.video.condition_positions[0].detach()
    assert table.shape[0] == model.cfg.token_counts()["condition"]
    gaps = torch.cdist(table, table) + torch.eye(table.shape[0])
    assert gaps.min() > 0.1, "two condition tokens start at the same position"
    x = inputs(model.cfg, batch=2)
    _, a_vel = _forward(model, x)
    a_vel.square().mean().backward()
    assert model.video.condition_positions.grad.abs().sum() > 0
    with torch.no_grad():
        model.video.condition_positions.zero_()
        assert torch.equal(_forward(model, x)[1], _forward(tiny_model, x)[1]), "zero positions: the old model"
        model.video.condition_positions.normal_()
        assert not torch.allclose(_forward(model, x)[1], a_vel)


def test_video_stream_never_sees_state_or_actions(tiny_model):
    x = inputs(tiny_model.cfg, batch=2)
    with torch.no_grad():
        v1, a1 = _forward(tiny_model, x)
        v2, a2 = _forward(tiny_model, x, state=x["state"] + 1.0,
                          actions=torch.zeros(2, tiny_model.cfg.horizon, tiny_model.cfg.action_dim))
    assert torch.equal(v1, v2)                        # p(video | obs, text)
    assert not torch.allclose(a1, a2)                 # p(actions | obs, text, state, video)


def test_actions_depend_on_future_video(tiny_model):
    x = inputs(tiny_model.cfg, batch=2)
    with torch.no_grad():
        _, a1 = _forward(tiny_model, x)
        _, a2 = _forward(tiny_model, x, future=torch.zeros(2, *tiny_model.cfg.future_latent_shape))
    assert not torch.allclose(a1, a2)


def test_fresh_model_outputs_zero_velocity():
    model = EfficientWAM(get_preset("sim-tiny"))
    with torch.no_grad():
        v, a = _forward(model, inputs(model.cfg, batch=2))
    assert v.abs().max() == 0 and a.abs().max() == 0   # zero-initialised heads
