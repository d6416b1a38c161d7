"""AnyPhoto nodes without ComfyUI: node contracts, face/canvas nodes on real tensors, patch callbacks
against the core's reference FLUX."""

import json
import re

import numpy as np
import pytest
import torch
from fixtures import comfy_flux_imitation as comfy_flux
from fixtures.face_models import render_scene
from integration.anyphoto_pack import load_pack

from anyphoto_core.conditioning import null_identity_inputs
from anyphoto_core.identity import IdentityInputs
from anyphoto_core.tokens import image_token_ids, pack_latent, unpack_tokens
from tests.tiny import TINY, tiny_adapter, tiny_flux

PACK = load_pack()


@pytest.mark.parametrize("name", sorted(PACK.NODE_CLASS_MAPPINGS))
def test_node_contract_and_tooltips(name):
    cls = PACK.NODE_CLASS_MAPPINGS[name]
    assert name.startswith("AnyPhoto") and callable(getattr(cls, cls.FUNCTION))
    # one naming scheme: "AnyPhoto <Words>" display names, "AnyPhoto/<lower-case stage>" categories
    assert re.fullmatch(r"AnyPhoto( [A-Z][A-Za-z-]*)+", PACK.NODE_DISPLAY_NAME_MAPPINGS[name])
    assert re.fullmatch(r"AnyPhoto/[a-z]+", cls.CATEGORY)
    assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for inp, decl in spec.get(section, {}).items():
            assert len(decl) == 2 and decl[1].get("tooltip"), f"{name}.{inp} has no tooltip"


def test_photo_paths_stay_inside_input_folder(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    resolve = PACK.faces.resolve_input_file
    assert resolve("a.png", str(tmp_path)) == str((tmp_path / "a.png").resolve())
    for bad in ("../a.png", "/etc/passwd", "sub/../../a.png"):
        with pytest.raises(ValueError, match="input folder"):
            resolve(bad, str(tmp_path))
    assert PACK.faces.parse_photo_names('[["a.png","b.png"],["c.png"]]') == [["a.png", "b.png"], ["c.png"]]
    assert PACK.faces.parse_photo_names("a.png, b.png\nc.png") == [["a.png", "b.png"], ["c.png"]]


def test_face_refs_embed_and_canvas_nodes(fixture_analyzer, tmp_path, monkeypatch):
    scene = torch.from_numpy(render_scene().astype(np.float32) / 255.0)[None]
    out = PACK.faces.AnyPhotoLoadFaceRefs().load(
        fixture_analyzer, "left_to_right", "0, 1", "error", "", person_1=scene, person_2=torch.cat([scene, scene])
    )
    refs, preview = out["result"]
    assert out["ui"][PACK.feedback.UI_KEY] == []
    assert len(refs) == 2 and len(refs[1].faces) == 2
    assert preview.shape == (1, 256, 3 * 256, 3) and 0 <= preview.min() and preview.max() <= 1
    (embeds,) = PACK.faces.AnyPhotoArcFaceEmbed().embed(refs)
    np.testing.assert_allclose(embeds.gallery_mean[0], refs[0].embedding)
    np.testing.assert_allclose(embeds.reference[1], refs[1].primary.embedding)
    np.testing.assert_allclose(np.linalg.norm(embeds.gallery_mean, axis=1), 1.0, rtol=1e-5)
    assert embeds.recognizer == fixture_analyzer.recognizer_name

    monkeypatch.setattr(PACK.host, "temp_directory", lambda: str(tmp_path))
    placements = json.dumps(
        {"version": 1, "units": "fraction", "people": [{"box": [0.1, 0.2, 0.4, 0.6]}, {"box": [0.55, 0.2, 0.85, 0.6]}]}
    )
    out = PACK.canvas.AnyPhotoBuildLocationCanvas().build(refs, 320, 256, placements, batch_size=3)
    canvas, images, masks, latent = out["result"]
    assert images.shape == (2, 256, 320, 3) and masks.shape == (2, 256, 320)
    # the one size: the latent output is the canvas size (FLUX: 16 channels, 8 px per latent cell)
    assert latent["samples"].shape == (3, 16, 256 // 8, 320 // 8) and not latent["samples"].any()
    assert [f["filename"] for f in out["ui"]["anyphoto_faces"]] == [p.name for p in sorted(tmp_path.glob("*.png"))]
    for k, c in enumerate(canvas.canvases):  # each face lands in its own box
        ys, xs = np.nonzero(c.mask)
        x1, y1, x2, y2 = canvas.placements[k].box
        assert x1 - 16 <= xs.mean() <= x2 + 16 and y1 - 16 <= ys.mean() <= y2 + 16
    with pytest.raises(ValueError, match="multiples of 16"):
        PACK.canvas.build_canvas_set(refs, 300, 256, placements)


H_TOK, W_TOK = 4, 6


def _setup(lengths, batch=2, latent_hw=(2 * H_TOK, 2 * W_TOK)):
    """Tiny core FLUX, adapter, identity inputs on the (H_TOK, W_TOK) token grid, and ComfyUI-style forward
    inputs ``(x (B, 16, h, w) latent, timestep, context, y, guidance)``."""
    model, adapter = tiny_flux(), tiny_adapter().double()
    g = torch.Generator().manual_seed(0)
    m = sum(lengths)
    cells = torch.randperm(H_TOK * W_TOK, generator=g)[:m].sort().values
    ids = image_token_ids(H_TOK, W_TOK, 1.0)[cells]
    tokens = torch.randn(1, m, 64, generator=g, dtype=torch.float64)
    deltas = torch.randn(len(lengths), TINY.hidden_size, generator=g, dtype=torch.float64) * 0.3
    identities = IdentityInputs(tokens, ids, tuple(lengths), deltas, (H_TOK, W_TOK), adapter.lora_function(1.0))
    x = torch.randn(batch, 16, *latent_hw, generator=g, dtype=torch.float64)
    context = torch.randn(batch, 5, TINY.context_in_dim, generator=g, dtype=torch.float64)
    t = torch.full((batch,), 0.5, dtype=torch.float64)
    y = torch.randn(batch, TINY.vec_in_dim, generator=g, dtype=torch.float64)
    guidance = torch.full((batch,), 3.5, dtype=torch.float64)
    return model, adapter, identities, (x, t, context, y, guidance)


def _core_reference(model, inputs, identities, **kwargs):
    """The core reference FLUX (``forward_anyphoto``) on the latent as ComfyUI pads it (circular, to whole
    2x2 patches), packed; the output back at the latent's size."""
    x, t, context, y, guidance = inputs
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (0, w % 2, 0, h % 2), mode="circular")
    h_tok, w_tok = padded.shape[-2] // 2, padded.shape[-1] // 2
    img_ids = image_token_ids(h_tok, w_tok)[None].expand(len(x), -1, -1)
    txt_ids = torch.zeros(len(x), context.shape[1], 3)
    out = model.forward_anyphoto(pack_latent(padded), img_ids, context, txt_ids, t, y, guidance, identities, **kwargs)
    return unpack_tokens(out, h_tok, w_tok)[:, :, :h, :w]


def _wrapped(model, identities, inputs, options, window=None, null_inputs=None, **kwargs):
    """The imitation of ComfyUI's ``Flux.forward`` with the pack's wrapper registered in ``options``."""
    wrapper = PACK.patching.AnyPhotoWrapper(identities, window or PACK.patching.SigmaWindow(), null_inputs=null_inputs)
    options = {**options, "wrappers": {comfy_flux.DIFFUSION_MODEL: {PACK.patching.WRAPPER_KEY: [wrapper]}}}
    return comfy_flux.flux_forward(model, *inputs, transformer_options=options, **kwargs)


@pytest.mark.parametrize("latent_hw", [(2 * H_TOK, 2 * W_TOK), (2 * H_TOK - 1, 2 * W_TOK - 1)], ids=["even", "padded"])
@pytest.mark.parametrize("lengths", [(3,), (2, 3, 1)])
def test_wrapper_callbacks_equal_core_reference(lengths, latent_hw):
    """ComfyUI's forward (imitated: wrapper executor, padding, patchify, img_ids, post_input, block replacements,
    unpatchify) with the pack's wrapper equals the core reference FLUX; an odd latent is padded like ComfyUI."""
    model, adapter, identities, inputs = _setup(lengths, latent_hw=latent_hw)
    out = _wrapped(model, identities, inputs, {"cond_or_uncond": [1, 0], "sigmas": torch.tensor([0.5])})
    ref = _core_reference(model, inputs, identities, global_sees_identities=torch.tensor([False, True]))
    assert out.shape == inputs[0].shape
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    stock = comfy_flux.flux_forward(model, *inputs)
    torch.testing.assert_close(stock, _core_reference(model, inputs, None), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out[0], stock[0], rtol=1e-9, atol=1e-9)  # uncond row: identities hidden
    assert (out[1] - stock[1]).abs().max() > 1e-4


def test_wrapper_refuses_an_attention_mask_conditioning():
    """ComfyUI passes ``attention_mask`` to every block as ``attn_mask``; the identity blocks cannot honour it."""
    model, _, identities, inputs = _setup((2,))
    mask = torch.zeros(2, 1, 5 + H_TOK * W_TOK, 5 + H_TOK * W_TOK, dtype=torch.float64)
    with pytest.raises(ValueError, match="attention-mask conditioning"):
        _wrapped(model, identities, inputs, {"sigmas": torch.tensor([0.5])}, attention_mask=mask)


def test_wrapper_inactive_outside_start_end_and_when_disabled():
    model, _, identities, inputs = _setup((2, 2))
    stock = comfy_flux.flux_forward(model, *inputs)
    sigma = {"sigmas": torch.tensor([0.5])}
    late = PACK.patching.SigmaWindow(0.4, 0.1)
    torch.testing.assert_close(_wrapped(model, identities, inputs, sigma, late), stock, rtol=0, atol=0)
    window = PACK.patching.SigmaWindow(1.0, 0.1)
    off = {"sigmas": torch.tensor([0.5]), PACK.patching.DISABLE_FLAG: True}
    torch.testing.assert_close(_wrapped(model, identities, inputs, off, window), stock, rtol=0, atol=0)
    assert (_wrapped(model, identities, inputs, sigma, window) - stock).abs().max() > 1e-4


def test_latent_size_mismatch_names_both_sizes():
    _, _, identities, _ = _setup((1,))
    with pytest.raises(ValueError, match="latent is 64x64 px but the AnyPhoto canvas is 96x64 px"):
        identities.check_latent((8, 8))


def test_identity_guidance_combination_and_weights():
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 1.0])
    torch.testing.assert_close(PACK.sampler.combine(a, b, 1.0), b)
    torch.testing.assert_close(PACK.sampler.combine(a, b, 2.0), torch.tensor([5.0, 0.0]))
    assert PACK.model.parse_weights("1, 0.5", 3, 2.0) == [2.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="3 person weights given for 2 people"):
        PACK.model.parse_weights("1,1,1", 2, 1.0)
    with pytest.raises(ValueError, match="person 2's weight is nan"):
        PACK.model.parse_weights("1, nan", 2, 1.0)


def test_wrapper_null_flag_runs_the_trained_null():
    """With the sampler's null flag the wrapper runs the null identity inputs it was given (core reference)."""
    model, adapter, identities, inputs = _setup((2, 3))
    null = null_identity_inputs(adapter, identities)
    options = {"sigmas": torch.tensor([0.5]), PACK.patching.NULL_FLAG: True}
    out = _wrapped(model, identities, inputs, options, null_inputs=null)
    torch.testing.assert_close(out, _core_reference(model, inputs, null), rtol=1e-9, atol=1e-9)
    assert (out - _core_reference(model, inputs, identities)).abs().max() > 1e-4
    assert (out - _core_reference(model, inputs, None)).abs().max() > 1e-4
    assert PACK.sampler.NULL_PASS_FLAGS == {
        "trained null": PACK.patching.NULL_FLAG,
        "no identities": PACK.patching.DISABLE_FLAG,
    }
