"""FLUX.1-dev schedule and the Euler sampler with identity guidance."""

import math

import pytest
import torch

from anyphoto_core.sampling import euler_sample, flux_schedule, time_shift_mu


def test_schedule_matches_the_flux_formula():
    ts = flux_schedule(28, 4096)
    assert len(ts) == 29 and ts[0] == 1.0 and ts[-1] == 0.0
    assert all(a > b for a, b in zip(ts, ts[1:], strict=False))
    mu = 1.15  # 4096 tokens is the max-shift anchor
    t = 0.5
    expected = math.exp(mu) / (math.exp(mu) + (1 / t - 1))
    assert flux_schedule(2, 4096)[1] == pytest.approx(expected)
    assert time_shift_mu(256) == pytest.approx(0.5)
    assert flux_schedule(4, 1024, shift=False) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_euler_recovers_the_data_point_of_an_exact_velocity():
    x0 = torch.randn(2, 6, 64)
    noise = torch.randn(2, 6, 64)

    def velocity(x, t, with_identity):
        # on the straight path x_t = (1-t) x0 + t noise the velocity is noise - x0
        return noise - x0

    out = euler_sample(velocity, noise, flux_schedule(7, 6))
    torch.testing.assert_close(out, x0, rtol=1e-5, atol=1e-5)


def test_identity_guidance_combines_two_passes():
    calls = []

    def velocity(x, t, with_identity):
        calls.append(with_identity)
        return torch.full_like(x, 2.0 if with_identity else 1.0)

    out = euler_sample(velocity, torch.zeros(1, 1, 1), [1.0, 0.0], id_guidance=3.0)
    # v = 1 + 3 * (2 - 1) = 4; x = 0 + (0 - 1) * 4
    assert out.item() == pytest.approx(-4.0) and calls == [True, False]
    calls.clear()
    euler_sample(velocity, torch.zeros(1, 1, 1), [1.0, 0.0], id_guidance=1.0)
    assert calls == [True]


def test_zero_steps_is_an_error():
    with pytest.raises(ValueError, match="at least 1"):
        flux_schedule(0, 16)
