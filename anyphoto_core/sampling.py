"""FLUX.1-dev sampling: the shifted rectified-flow schedule and an Euler sampler.

Schedule (black-forest-labs ``get_schedule``): ``t`` goes linearly from 1 to 0 in ``steps``
steps, then is shifted by ``t' = e^mu / (e^mu + 1/t - 1)`` with ``mu`` linear in the image token
count (0.5 at 256 tokens, 1.15 at 4096). The model predicts the velocity ``v = noise - x0`` and
``x_{t_next} = x_t + (t_next - t) * v``.

Identity guidance (optional, ``id_guidance > 1``): ``v = v_noid + s * (v_id - v_noid)`` where
``v_noid`` is a second pass with the identities dropped the way AnyPhoto's 15% identity dropout
trains it (by default the hosts pass the trained null of
:func:`anyphoto_core.conditioning.null_identity_inputs`: zero tokens at the same positions, zero
embeddings; or, as an option, no identities at all). ``s = 1`` is the paper's setting (one pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor, bool], Tensor]


def time_shift_mu(
    image_tokens: int, base_shift: float = 0.5, max_shift: float = 1.15, base_tokens: int = 256, max_tokens: int = 4096
) -> float:
    """``mu`` for an image of ``image_tokens`` tokens (linear through the two anchors)."""
    slope = (max_shift - base_shift) / (max_tokens - base_tokens)
    return base_shift + slope * (image_tokens - base_tokens)


def flux_schedule(steps: int, image_tokens: int, shift: bool = True) -> list[float]:
    """``steps + 1`` timesteps from 1 to 0 (FLUX.1-dev shifts them; schnell does not)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device="cpu").tolist()
    if not shift:
        return ts
    mu = time_shift_mu(image_tokens)
    return [t if t in (0.0, 1.0) else math.exp(mu) / (math.exp(mu) + (1.0 / t - 1.0)) for t in ts]


def euler_sample(
    velocity: VelocityFn,
    noise: Tensor,
    timesteps: list[float],
    id_guidance: float = 1.0,
    callback: Callable[[int, int, Tensor], None] | None = None,
) -> Tensor:
    """Integrate from ``noise`` (t = 1) to t = 0.

    ``velocity(x, t, with_identity)`` returns the model's velocity at batch timestep ``t`` (B,).
    ``callback(step, total, x)`` is called after every step (progress bars, previews).
    """
    x = noise
    total = len(timesteps) - 1
    for i, (t_curr, t_next) in enumerate(zip(timesteps[:-1], timesteps[1:], strict=False)):
        t = torch.full((x.shape[0],), t_curr, dtype=x.dtype, device=x.device)
        v = velocity(x, t, True)
        if id_guidance != 1.0:
            v_noid = velocity(x, t, False)
            v = v_noid + id_guidance * (v - v_noid)
        x = x + (t_next - t_curr) * v
        if callback is not None:
            callback(i + 1, total, x)
    return x
