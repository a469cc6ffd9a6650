import torch

from policy.model.flow import (
    add_noise,
    euler_step,
    sample_timesteps,
    sampling_times,
    shift_time,
    velocity_target,
)


def test_noise_endpoints_and_target():
    x0, n = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    assert torch.equal(add_noise(x0, n, torch.zeros(3)), x0)
    assert torch.equal(add_noise(x0, n, torch.ones(3)), n)
    assert torch.allclose(velocity_target(x0, n), n - x0)


def test_shift_pushes_time_towards_noise():
    t = torch.linspace(0.05, 0.95, 10)
    s = shift_time(t, 5.0)
    assert (s > t).all() and torch.all(s[1:] > s[:-1])
    ts = sample_timesteps(4096, 5.0, generator=torch.Generator().manual_seed(0))
    assert 0 < ts.min() and ts.max() < 1 and ts.median() > 0.7     # shift 5 -> median 5/6


def test_euler_with_exact_velocity_recovers_data():
    x0, n = torch.randn(2, 7), torch.randn(2, 7)
    times = sampling_times(3, 5.0)
    assert times[0] == 1 and times[-1] == 0
    x = n
    for i in range(3):
        x = euler_step(x, velocity_target(x0, n), times[i], times[i + 1])
    assert torch.allclose(x, x0, atol=1e-6)
