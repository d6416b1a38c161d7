"""Loss terms against hand computations; gradients of the face loss reach the adapter."""

import math

import torch

from train.losses import (
    face_loss_weights,
    face_similarity_loss,
    flow_matching_loss,
    info_nce_loss,
    interpolate,
    one_step_x0,
    sample_logit_normal,
)


def test_flow_matching_by_hand():
    x0 = torch.tensor([[1.0, 2.0]])
    noise = torch.tensor([[3.0, -1.0]])
    t = torch.tensor([0.25])
    x_t = interpolate(x0, noise, t)
    torch.testing.assert_close(x_t, torch.tensor([[0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * -1]]))
    v = torch.tensor([[2.0, -3.0]])  # target is (2, -3): exact
    assert flow_matching_loss(v, x0, noise).item() == 0.0
    assert flow_matching_loss(torch.tensor([[0.0, 0.0]]), x0, noise).item() == (4 + 9) / 2
    # the exact velocity recovers x0 in one step
    torch.testing.assert_close(one_step_x0(x_t, t, noise - x0), x0)


def test_logit_normal_t_statistics():
    t = sample_logit_normal(20000, 0.0, 1.0, torch.Generator().manual_seed(0))
    assert 0 < t.min() and t.max() < 1
    assert abs(t.median().item() - 0.5) < 0.02  # sigmoid(0)
    t2 = sample_logit_normal(20000, 1.0, 0.5, torch.Generator().manual_seed(0))
    assert abs(t2.median().item() - 1 / (1 + math.exp(-1.0))) < 0.02


def test_face_loss_by_hand():
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    ref = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    # cos = 1, 0, 1/sqrt2 -> 1 - cos = 0, 1, 1 - 0.7071
    assert abs(face_similarity_loss(pred, ref).item() - (0 + 1 + (1 - 2**-0.5)) / 3) < 1e-6
    w = torch.tensor([0.0, 1.0, 1.0])
    assert abs(face_similarity_loss(pred, ref, w).item() - (1 + (1 - 2**-0.5)) / 2) < 1e-6
    assert face_similarity_loss(pred, ref, torch.zeros(3)).item() == 0.0


def test_info_nce_by_hand():
    pred = torch.tensor([[1.0, 0.0]])
    ref = torch.tensor([[1.0, 0.0]])
    neg = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    tau = 0.5
    logits = torch.tensor([1 / tau, 0 / tau, -1 / tau])
    expected = -(logits[0] - torch.logsumexp(logits, 0))
    assert abs(info_nce_loss(pred, ref, neg, tau).item() - expected.item()) < 1e-6


def test_face_loss_gate():
    keep = torch.tensor([True, False, True])
    t = torch.tensor([0.3, 0.3, 0.9])
    assert face_loss_weights(keep, t, 0.6).tolist() == [1.0, 0.0, 0.0]
    assert face_loss_weights(keep, t, 1.0).tolist() == [1.0, 0.0, 1.0]
