"""Trainer pins: identity dropout zeroes the canvas tokens AND the embedding of a dropped identity, and
the face loss compares each generated face with its own person's reference embedding."""

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

import train.trainer as trainer_module
from train.trainer import AnyPhotoObjective, Trainer


def _captured_identities(objective, s, monkeypatch):
    flux = objective.models.flux
    seen = []
    real = flux.forward_anyphoto

    def spy(*args, **kwargs):
        seen.append(args[7])
        return real(*args, **kwargs)

    monkeypatch.setattr(flux, "forward_anyphoto", spy)
    noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        objective(s, torch.tensor([0.4]), noise)
    monkeypatch.undo()
    return seen[0]


def test_dropout_zeroes_tokens_and_embedding(tiny_config, frozen_models, monkeypatch):
    tr = Trainer(tiny_config("data.id_dropout=0.5", "loss.face_weight=0.0"), models=frozen_models)
    for position in range(64):  # a sample with one identity dropped and one kept
        sample = tr.data.build(position, 0)
        if len(sample.keep) > 1 and sample.keep.any() and not sample.keep.all():
            break
    else:
        raise AssertionError("no sample with a dropped and a kept identity in 64 positions")
    dropped, kept = int(np.flatnonzero(~sample.keep)[0]), int(np.flatnonzero(sample.keep)[0])
    assert not sample.embeddings[dropped].any() and sample.embeddings[kept].any()  # the dataset zeroes it
    s = tr.prepare(sample)
    inputs = _captured_identities(tr.accelerator.unwrap_model(tr.objective), s, monkeypatch)
    start = [0, *np.cumsum(inputs.lengths)]
    rows = {i: inputs.tokens[0, start[i] : start[i + 1]] for i in range(len(inputs.lengths))}
    assert rows[dropped].numel() and not rows[dropped].any()  # canvas tokens zeroed
    torch.testing.assert_close(rows[kept], s.tokens[kept].tokens[0], rtol=0, atol=0)
    with torch.no_grad():
        zero_offset = tr.adapter.modulation_offsets(torch.zeros(1, 512)).float()[0]
        kept_offset = tr.adapter.modulation_offsets(s.embeddings[kept : kept + 1]).float()[0]
    torch.testing.assert_close(inputs.delta[dropped], zero_offset, rtol=0, atol=0)  # MLP(0): embedding zeroed
    torch.testing.assert_close(inputs.delta[kept], kept_offset, rtol=0, atol=0)


def test_face_loss_pairs_each_face_with_its_own_reference(tiny_config, frozen_models, monkeypatch):
    """Each face crop is tagged with its landmarks' index; a stub recognizer returns that person's reference
    embedding, so correct pairing gives a face loss of exactly 0 and any mix-up a loss near 1."""
    tr = Trainer(
        tiny_config("data.id_dropout=0.0", "loss.face_weight=1.0", "loss.nce_weight=0.0"), models=frozen_models
    )
    s = tr.prepare(tr.data.build(0, 0, augment=False))
    count = len(s.keep)
    assert count > 1
    reference = F.normalize(torch.randn(count, 512, generator=torch.Generator().manual_seed(4)), dim=-1)
    s = dataclasses.replace(
        s, reference=reference, landmarks=torch.arange(count, dtype=torch.float32)[:, None, None].expand(-1, 5, 2)
    )

    def tagged_crops(decode, latent, landmarks, *args):
        return landmarks[:, :1, :1, None].expand(-1, 3, 112, 112) + 0 * latent.sum()

    monkeypatch.setattr(trainer_module, "decode_face_crops", tagged_crops)
    monkeypatch.setattr(trainer_module, "decode_face_crops_full", tagged_crops)
    recognizer = lambda crops: reference[crops[:, 0, 0, 0].long()]  # noqa: E731
    objective = AnyPhotoObjective(tr.adapter, dataclasses.replace(frozen_models, recognizer=recognizer), tr.config)
    noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = objective(s, torch.tensor([0.1]), noise)
    assert "face" in out
    torch.testing.assert_close(out["face"], torch.tensor(0.0), rtol=0, atol=1e-6)
