"""The identity embedding the trainer feeds the projector and the face loss: by default the recognizer's
embedding of the face actually pasted on the canvas (paper eq. 15); the gallery mean stays an option."""

import numpy as np
import torch
import torch.nn.functional as F

from anyphoto_core.faces import TorchArcFace, load_photo
from train.trainer import Trainer


def _embed_on_photo(recognizer_path, image_path, landmarks) -> torch.Tensor:
    """Independent reference: torch alignment on the original photo (not insightface's norm_crop)."""
    rec = TorchArcFace(recognizer_path)
    img = torch.from_numpy(load_photo(image_path)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return F.normalize(rec.embed_aligned(img, torch.as_tensor(landmarks, dtype=torch.float32)[None]), dim=-1)[0]


def test_reference_embedding_is_the_pasted_face(tiny_config, frozen_models, recognizer_path):
    """No replacement: e_i is the target face's own embedding. Full replacement: the gallery photo's. Both
    differ from the gallery mean the option ``gallery_mean`` uses; dropped identities get zero embeddings."""
    tr = Trainer(tiny_config("data.id_dropout=0.0", "data.replace_milestones=[100000]"), models=frozen_models)
    sample = tr.data.build(0, 0)
    prepared = tr.prepare(sample)
    record = tr.data.manifest.images[tr.data.index_at(0)]
    assert not sample.replaced.any()
    for i, face in enumerate(record.faces):
        own = _embed_on_photo(recognizer_path, record.image, face.landmarks)
        assert F.cosine_similarity(prepared.reference[i], own, dim=0) > 0.999
        torch.testing.assert_close(prepared.embeddings[i], prepared.reference[i])
    gallery = torch.from_numpy(sample.reference)
    assert (F.cosine_similarity(prepared.reference, gallery, dim=-1) < 0.99).any()

    replaced = Trainer(
        tiny_config("data.id_dropout=0.0", "data.replace_milestones=[0]", "data.replace_max=1.0"), models=frozen_models
    )
    sample = replaced.data.build(0, 10)
    assert sample.replaced.all()
    prepared = replaced.prepare(sample)
    rng = np.random.default_rng([replaced.data.seed, 0, 1])  # the builder's draws: replace?, gallery index
    for i, face in enumerate(record.faces):
        rng.random()
        gallery_photos = replaced.data.manifest.galleries[face.identity]
        ref = gallery_photos[int(rng.integers(len(gallery_photos)))]
        own = _embed_on_photo(recognizer_path, ref.image, ref.landmarks)
        assert F.cosine_similarity(prepared.reference[i], own, dim=0) > 0.999


def test_gallery_mean_option_and_dropout(tiny_config, frozen_models):
    tr = Trainer(tiny_config("data.embedding=gallery_mean", "data.id_dropout=0.0"), models=frozen_models)
    sample = tr.data.build(0, 0)
    prepared = tr.prepare(sample)
    torch.testing.assert_close(prepared.reference, torch.from_numpy(sample.reference))
    dropped = Trainer(tiny_config("data.id_dropout=0.99"), models=frozen_models)
    prepared = dropped.prepare(dropped.data.build(0, 0))
    assert not prepared.keep.any() and prepared.embeddings.abs().sum() == 0 and prepared.reference.abs().sum() > 0


def test_null_pass_equals_a_dropped_identity_forward(tiny_config, frozen_models):
    """Identity guidance's trained null (``null_identity_inputs`` of the conditional inputs) gives exactly the
    forward of training's dropout of every identity (the objective's flow loss at the same t and noise), and
    differs from the no-identity pass."""
    from anyphoto_core.conditioning import identity_inputs, null_identity_inputs
    from train.losses import flow_matching_loss, interpolate

    tr = Trainer(tiny_config("data.id_dropout=0.99", "loss.face_weight=0.0"), models=frozen_models)
    s = tr.prepare(tr.data.build(0, 0))
    assert not s.keep.any() and sum(t.count for t in s.tokens) > 0
    t = torch.tensor([0.4])
    noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        dropped = tr.objective(s, t, noise)["flow"]
        cond = identity_inputs(tr.adapter, s.tokens, s.reference)  # what inference builds from the same canvases
        args = (interpolate(s.x0, noise, t), s.img_ids, s.txt, torch.zeros(1, s.txt.shape[1], 3), t, s.y)
        guidance = torch.full((1,), tr.config.model.guidance)
        v_null = frozen_models.flux.forward_anyphoto(*args, guidance, null_identity_inputs(tr.adapter, cond))
        v_none = frozen_models.flux.forward_anyphoto(*args, guidance, None)
    torch.testing.assert_close(flow_matching_loss(v_null, s.x0, noise), dropped, rtol=1e-6, atol=0)
    assert abs(float(flow_matching_loss(v_none, s.x0, noise) - dropped)) > 1e-6


def test_exported_adapter_records_embedding_and_recognizer(tiny_config, frozen_models, recognizer_path, tmp_path):
    from anyphoto_core.adapter import read_adapter_config

    for kind in ("reference", "gallery_mean"):
        tr = Trainer(tiny_config(f"data.embedding={kind}"), models=frozen_models)
        meta = read_adapter_config(tr.export(tmp_path / f"{kind}.safetensors"))
        assert meta.embedding_kind == kind
