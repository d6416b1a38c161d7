"""The adapter carries its recipe (coverage rule, type index, embedding kind, recognizer) and every
host reads it from there: file round trip, version-1 files, typed parsing, the pipeline, the warning."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from anyphoto_core.adapter import AdapterConfig, AdapterError, read_adapter_config
from anyphoto_core.embeddings import IdentityEmbeddings
from anyphoto_core.notices import RECOGNIZER_MISMATCH
from tests.tiny import tiny_adapter


def _save_with(tmp_path, **meta_changes):
    path = tmp_path / "a.safetensors"
    tiny_adapter().save(path)
    meta = read_adapter_config(path).to_metadata()
    meta.update(meta_changes)
    meta = {k: v for k, v in meta.items() if v is not None}
    save_file(load_file(path), path, metadata=meta)
    return path


def test_recipe_round_trips_with_its_types(tmp_path):
    cfg = dataclasses.replace(
        tiny_adapter().config, token_rule="any", type_index=2.0, embedding_kind="reference", recognizer="mini-arc"
    )
    loaded = AdapterConfig.from_metadata(cfg.to_metadata(), "x")
    assert loaded == cfg
    assert isinstance(loaded.type_index, float) and isinstance(loaded.rank, int)
    assert isinstance(loaded.double_targets, tuple)


def test_version_1_file_loads_with_the_documented_defaults(tmp_path):
    path = _save_with(
        tmp_path,
        format_version="1",
        token_rule=None,
        recognizer=None,
        embedding_kind="arcface-antelopev2-l2norm-mean",
    )
    cfg = read_adapter_config(path)
    assert (cfg.token_rule, cfg.embedding_kind, cfg.recognizer) == ("majority", "gallery_mean", "antelopev2")


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("token_rule", "sometimes", "token_rule must be one of"),
        ("embedding_kind", "False", "embedding_kind must be one of"),
        ("rank", "4.5", "rank='4.5' is not an integer"),
        ("type_index", "one", "type_index='one' is not a finite number"),
        ("double_targets", "img_attn.qkv", "is not a JSON list"),
    ],
)
def test_bad_recipe_values_are_named(tmp_path, field, value, message):
    path = _save_with(tmp_path, **{field: value})
    with pytest.raises(AdapterError, match=message):
        read_adapter_config(path)


def _embeddings(recognizer="antelopev2"):
    g = np.random.default_rng(0)
    mean, ref = (g.normal(size=(2, 512)).astype(np.float32) for _ in range(2))
    return IdentityEmbeddings(mean, ref, recognizer)


def test_embedding_kind_picks_the_adapters_kind():
    emb = _embeddings()
    base = tiny_adapter().config
    chosen, notices = emb.for_adapter(dataclasses.replace(base, embedding_kind="reference"))
    assert chosen is emb.reference and notices == []
    chosen, notices = emb.for_adapter(dataclasses.replace(base, embedding_kind="gallery_mean"))
    assert chosen is emb.gallery_mean and notices == []


def test_other_recognizer_gives_a_visible_warning():
    cfg = tiny_adapter().config  # recognizer antelopev2
    _, notices = _embeddings("tiny-random").for_adapter(cfg)
    assert [n.kind for n in notices] == [RECOGNIZER_MISMATCH]
    assert "'tiny-random'" in notices[0].message and "'antelopev2'" in notices[0].message
    assert _embeddings("").for_adapter(cfg)[1] == []  # unknown recognizer: nothing to compare


def test_pipeline_reads_rule_type_index_and_kind_from_the_adapter(tmp_path):
    """The standalone pipeline builds tokens, ids and offsets with the adapter's recipe."""
    from fixtures.face_models import insightface_image
    from test_pipeline import PLACEMENTS, SETTINGS

    from anyphoto_core.app.models import TinyRecognizer
    from anyphoto_core.app.pipeline import AnyPhotoPipeline
    from anyphoto_core.faces import FaceAnalyzer, build_identity
    from anyphoto_core.faces.backends import CenterFaceDetector

    pipe = AnyPhotoPipeline.tiny(folder=tmp_path / "tiny")
    analyzer = FaceAnalyzer(CenterFaceDetector(), TinyRecognizer(), "tiny-random")
    photo = str(insightface_image("t1.jpg"))
    mirrored = np.asarray(Image.open(photo).convert("RGB"))[:, ::-1].copy()  # a second, different photo
    people = [build_identity([photo, mirrored], analyzer, rule="left_to_right", index=k) for k in (1, 4)]
    size = (SETTINGS.width, SETTINGS.height)
    base = pipe.adapter.config
    results = {}
    for rule, kind, type_index in (("majority", "gallery_mean", 1.0), ("any", "reference", 3.0)):
        pipe.adapter.config = dataclasses.replace(
            base, token_rule=rule, embedding_kind=kind, type_index=type_index, recognizer="tiny-random"
        )
        inputs, _, notices = pipe.identity_inputs(people, PLACEMENTS, size)
        assert notices == []
        assert torch.all(inputs.ids[:, 0] == type_index)
        results[rule] = inputs
    pipe.adapter.config = base
    assert results["any"].total > results["majority"].total  # "any" keeps every touched token
    emb = IdentityEmbeddings.from_identities(people)
    assert np.abs(emb.reference - emb.gallery_mean).max() > 0.01
    for rule, kind in (("majority", emb.gallery_mean), ("any", emb.reference)):
        want = pipe.adapter.modulation_offsets(torch.from_numpy(kind)).float()
        torch.testing.assert_close(results[rule].delta, want, rtol=0, atol=0)
