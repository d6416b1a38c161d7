"""The standalone pipeline on the built-in tiny models: identity on/off against a stock FLUX run."""

import numpy as np
import pytest
import torch
from fixtures.face_models import insightface_image
from fixtures.own_default_device import own_code_default_device

from anyphoto_core.app.models import TinyRecognizer
from anyphoto_core.app.pipeline import AnyPhotoPipeline, GenerationSettings
from anyphoto_core.faces import FaceAnalyzer, build_identity
from anyphoto_core.faces.backends import CenterFaceDetector
from anyphoto_core.placements import Placement
from anyphoto_core.sampling import euler_sample, flux_schedule
from anyphoto_core.tokens import image_token_ids, pack_latent, unpack_tokens

SETTINGS = GenerationSettings("two friends", width=128, height=96, steps=3, seed=7)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return AnyPhotoPipeline.tiny(folder=tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def identities():
    analyzer = FaceAnalyzer(CenterFaceDetector(), TinyRecognizer())
    photo = str(insightface_image("t1.jpg"))
    return [build_identity([photo], analyzer, rule="left_to_right", index=k) for k in (1, 4)]


PLACEMENTS = [Placement.from_box((10, 20, 50, 70)), Placement.from_box((70, 20, 110, 70))]


def stock_flux_image(pipe, settings):
    """Independent stock FLUX run: plain ``Flux.forward`` (no identity code), same seed and schedule."""
    txt, y = pipe.encode_prompt(settings.prompt)
    h, w = settings.height // 16, settings.width // 16
    noise = torch.randn(
        1, 16, settings.height // 8, settings.width // 8, generator=torch.Generator().manual_seed(settings.seed)
    )
    ids, txt_ids = image_token_ids(h, w)[None], torch.zeros(1, txt.shape[1], 3)
    g = torch.full((1,), settings.guidance)
    with torch.no_grad():
        x = euler_sample(
            lambda x, t, _: pipe.flux(x, ids, txt, txt_ids, t, y, g),
            pack_latent(noise),
            flux_schedule(settings.steps, h * w),
        )
        img = pipe.vae.decode(unpack_tokens(x, h, w))[0]
    return ((img.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def test_no_identity_equals_stock_flux(pipe):
    out = np.asarray(pipe.generate(SETTINGS).image)
    assert out.shape == (96, 128, 3)
    np.testing.assert_array_equal(out, stock_flux_image(pipe, SETTINGS))


def test_identities_change_the_image_and_are_deterministic(pipe, identities):
    plain = np.asarray(pipe.generate(SETTINGS).image).astype(int)
    res = pipe.generate(SETTINGS, identities, PLACEMENTS)
    again = pipe.generate(SETTINGS, identities, PLACEMENTS)
    assert len(res.canvases) == 2 and all(n > 0 for n in res.token_counts)
    assert np.abs(np.asarray(res.image).astype(int) - plain).max() > 0
    np.testing.assert_array_equal(np.asarray(res.image), np.asarray(again.image))


def test_identity_guidance_changes_output(pipe, identities):
    one = np.asarray(pipe.generate(SETTINGS, identities, PLACEMENTS).image).astype(int)
    import dataclasses

    two = np.asarray(pipe.generate(dataclasses.replace(SETTINGS, id_guidance=2.0), identities, PLACEMENTS).image)
    assert np.abs(two.astype(int) - one).max() > 0


def test_generation_creates_no_tensor_on_the_default_device(pipe, identities):
    """Canvases, VAE, tokens, identity inputs, identity guidance's trained null, the sampler and the decode with
    the project's stray tensor factories sent to ``meta`` (:mod:`fixtures.own_default_device`): the same image."""
    import dataclasses

    settings = dataclasses.replace(SETTINGS, id_guidance=2.0)
    plain = pipe.generate(settings, identities, PLACEMENTS)
    with own_code_default_device("meta"):
        redirected = pipe.generate(settings, identities, PLACEMENTS)
    np.testing.assert_array_equal(np.asarray(redirected.image), np.asarray(plain.image))


def test_bad_size_is_refused():
    with pytest.raises(ValueError, match="multiple of 16"):
        GenerationSettings("x", width=100, height=96)


@pytest.mark.parametrize("null", ["trained", "none"])
def test_identity_guidance_second_pass_is_the_trained_null(pipe, identities, monkeypatch, null):
    """``identity_null="trained"`` (the default): the second pass gets the identities' token positions and ids
    with zero token values and ``delta = MLP(0)`` (training's dropout); ``"none"``: no identities."""
    import dataclasses

    seen = []
    real = pipe.flux.forward_anyphoto
    monkeypatch.setattr(pipe.flux, "forward_anyphoto", lambda *a, **k: seen.append(a[7]) or real(*a, **k))
    settings = dataclasses.replace(SETTINGS, id_guidance=2.0, identity_null=null, identity_weights=(0.5, 2.0))
    pipe.generate(settings, identities, PLACEMENTS)
    cond, second = seen[0::2], seen[1::2]
    assert len(cond) == len(second) == SETTINGS.steps
    if null == "none":
        assert all(s is None for s in second)
        return
    mlp0 = pipe.adapter.modulation_offsets(torch.zeros(2, 512)).float()
    for c, s in zip(cond, second, strict=True):
        assert s.lengths == c.lengths and torch.equal(s.ids, c.ids) and s.tokens.abs().sum() == 0
        assert c.tokens.abs().sum() > 0
        torch.testing.assert_close(s.delta, mlp0, rtol=0, atol=0)
