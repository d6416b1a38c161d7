"""Training losses (paper section 3.5; WithAnyone extras, see docs/reference section 1.8).

Rectified flow, black-forest-labs convention: ``x_t = (1 - t) * x0 + t * noise`` with ``t`` in
(0, 1), the model predicts ``v = noise - x0``; one-step estimate ``x0_hat = x_t - t * v_hat``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sample_logit_normal(batch: int, mean: float = 0.0, std: float = 1.0, generator=None, device=None) -> Tensor:
    """``t = sigmoid(N(mean, std))`` of shape ``(batch,)``, float32, on ``device``; drawn on the generator's device."""
    draw_on = generator.device if generator is not None else device
    z = torch.randn(batch, generator=generator, dtype=torch.float32, device=draw_on)
    return torch.sigmoid(mean + std * z).to(device)


def interpolate(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """``x_t = (1 - t) x0 + t noise``; ``t`` ``(B,)`` broadcast over the other dims."""
    tt = t.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - tt) * x0 + tt * noise


def flow_matching_loss(v_pred: Tensor, x0: Tensor, noise: Tensor) -> Tensor:
    """Mean squared error to the target velocity ``noise - x0`` (eq. 20), in float32."""
    return F.mse_loss(v_pred.float(), (noise - x0).float())


def one_step_x0(x_t: Tensor, t: Tensor, v_pred: Tensor) -> Tensor:
    """``x0_hat = x_t - t * v_hat`` (eq. 22)."""
    return x_t - t.reshape(-1, *([1] * (x_t.ndim - 1))).to(x_t.dtype) * v_pred


def face_similarity_loss(pred: Tensor, reference: Tensor, weight: Tensor | None = None) -> Tensor:
    """``mean_i w_i (1 - cos(pred_i, reference_i)) / sum_i w_i`` (eq. 24); 0 when no weight is set.

    ``pred``: (F, D) embeddings of the predicted faces; ``reference``: (F, D); ``weight``: (F,)
    (e.g. 0 for dropped identities or faces above the timestep gate).
    """
    cos = F.cosine_similarity(pred.float(), reference.float(), dim=-1)
    weight = torch.ones_like(cos) if weight is None else weight.float()
    # All weights 0: the numerator is exactly 0, so the clamp gives 0 (graph kept, zero gradient) without a
    # data-dependent branch (no device-to-host sync; runs on the meta device for benchmarks/train_memory.py).
    return ((1.0 - cos) * weight).sum() / weight.sum().clamp_min(torch.finfo(torch.float32).tiny)


def info_nce_loss(
    pred: Tensor, reference: Tensor, negatives: Tensor, temperature: float = 0.07, weight: Tensor | None = None
) -> Tensor:
    """Extended-negative InfoNCE: per face, positive = its reference, negatives = ``negatives`` (K, D)
    (other identities' embeddings). ``-log softmax(cos / T)[positive]``, weighted mean like above."""
    p = F.normalize(pred.float(), dim=-1)
    pos = (p * F.normalize(reference.float(), dim=-1)).sum(-1, keepdim=True)
    neg = p @ F.normalize(negatives.float(), dim=-1).T
    logits = torch.cat([pos, neg], dim=1) / temperature
    per_face = -torch.log_softmax(logits, dim=1)[:, 0]
    weight = torch.ones_like(per_face) if weight is None else weight.float()
    total = weight.sum()
    if total <= 0:
        return per_face.sum() * 0.0
    return (per_face * weight).sum() / total


def face_loss_weights(keep: Tensor, t: Tensor, t_max: float) -> Tensor:
    """(F,) weights: 1 for kept identities whose sample's ``t <= t_max``, else 0. ``t`` per face."""
    return (keep & (t <= t_max)).float()
