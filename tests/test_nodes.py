"""AnyPhoto nodes without ComfyUI: node contracts, face/canvas nodes on real tensors, patch callbacks
against the core's reference FLUX."""

import json
import re

import numpy as np
import pytest
import torch
from fixtures.face_models import render_scene
from integration.anyphoto_pack import load_pack

from anyphoto_core.conditioning import null_identity_inputs
from anyphoto_core.identity import IdentityInputs
from anyphoto_core.tokens import image_token_ids
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


class _Executor:
    """Minimal stand-in for ComfyUI's WrapperExecutor around a forward_orig-like function."""

    def __init__(self, class_obj, fn):
        self.class_obj, self.fn = class_obj, fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def _comfy_like_forward(model, img, img_ids, txt, txt_ids, t, y, guidance, transformer_options):
    """ComfyUI Flux.forward_orig's patch contract (post_input, dit block replace) over the core FLUX."""
    n_img = img.shape[1]
    vec = model.conditioning_vector(t, y, guidance)
    img, txt = model.img_in(img), model.txt_in(txt)
    for p in transformer_options.get("patches", {}).get("post_input", []):
        out = p({"img": img, "txt": txt, "img_ids": img_ids, "txt_ids": txt_ids})
        img, txt, img_ids, txt_ids = out["img"], out["txt"], out["img_ids"], out["txt_ids"]
    pe = model.pe_embedder(torch.cat((txt_ids.float(), img_ids.float()), 1))
    dit = transformer_options.get("patches_replace", {}).get("dit", {})
    for i, block in enumerate(model.double_blocks):

        def original(a, block=block):
            i_, t_ = block(a["img"], a["txt"], a["vec"], a["pe"])
            return {"img": i_, "txt": t_}

        args = {
            "img": img,
            "txt": txt,
            "vec": vec,
            "pe": pe,
            "attn_mask": None,
            "transformer_options": transformer_options,
        }
        out = (
            dit[("double_block", i)](args, {"original_block": original})
            if ("double_block", i) in dit
            else original(args)
        )
        img, txt = out["img"], out["txt"]
    x = torch.cat((txt, img), 1)
    for i, block in enumerate(model.single_blocks):
        args = {"img": x, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": transformer_options}
        original = {"original_block": lambda a, b=block: {"img": b(a["img"], a["vec"], a["pe"])}}
        key = ("single_block", i)
        x = (dit[key](args, original) if key in dit else original["original_block"](args))["img"]
    return model.final_layer(x[:, txt.shape[1] : txt.shape[1] + n_img], vec)


H_TOK, W_TOK = 4, 6


def _setup(lengths, batch=2):
    model, adapter = tiny_flux(), tiny_adapter().double()
    g = torch.Generator().manual_seed(0)
    m = sum(lengths)
    cells = torch.randperm(H_TOK * W_TOK, generator=g)[:m].sort().values
    ids = image_token_ids(H_TOK, W_TOK, 1.0)[cells]
    tokens = torch.randn(1, m, 64, generator=g, dtype=torch.float64)
    deltas = torch.randn(len(lengths), TINY.hidden_size, generator=g, dtype=torch.float64) * 0.3
    identities = IdentityInputs(tokens, ids, tuple(lengths), deltas, (H_TOK, W_TOK), adapter.lora_function(1.0))
    img = torch.randn(batch, H_TOK * W_TOK, 64, generator=g, dtype=torch.float64)
    img_ids = image_token_ids(H_TOK, W_TOK)[None].expand(batch, -1, -1)
    txt = torch.randn(batch, 5, TINY.context_in_dim, generator=g, dtype=torch.float64)
    t = torch.full((batch,), 0.5, dtype=torch.float64)
    y = torch.randn(batch, TINY.vec_in_dim, generator=g, dtype=torch.float64)
    guidance = torch.full((batch,), 3.5, dtype=torch.float64)
    inputs = (img, img_ids, txt, torch.zeros(batch, 5, 3), t, y, guidance)
    return model, adapter, identities, inputs


def _wrapped(model, identities, inputs, options, window=None):
    wrapper = PACK.patching.AnyPhotoWrapper(identities, window or PACK.patching.SigmaWindow())
    x = torch.zeros(inputs[0].shape[0], 16, 2 * H_TOK, 2 * W_TOK)
    ex = _Executor(model, lambda *a, **k: _comfy_like_forward(model, *inputs, a[7]))
    return wrapper(ex, x, None, None, None, None, None, None, options)


@pytest.mark.parametrize("lengths", [(3,), (2, 3, 1)])
def test_wrapper_callbacks_equal_core_reference(lengths):
    model, adapter, identities, inputs = _setup(lengths)
    out = _wrapped(model, identities, inputs, {"cond_or_uncond": [1, 0], "sigmas": torch.tensor([0.5])})
    ref = model.forward_anyphoto(*inputs, identities, global_sees_identities=torch.tensor([False, True]))
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    stock = model(*inputs)
    torch.testing.assert_close(out[0], stock[0], rtol=1e-9, atol=1e-9)  # uncond row: identities hidden
    assert (out[1] - stock[1]).abs().max() > 1e-4


def test_wrapper_inactive_outside_start_end_and_when_disabled():
    model, _, identities, inputs = _setup((2, 2))
    stock = model(*inputs)
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
    wrapper = PACK.patching.AnyPhotoWrapper(identities, PACK.patching.SigmaWindow(), null_inputs=null)
    x = torch.zeros(inputs[0].shape[0], 16, 2 * H_TOK, 2 * W_TOK)
    ex = _Executor(model, lambda *a, **k: _comfy_like_forward(model, *inputs, a[7]))
    options = {"sigmas": torch.tensor([0.5]), PACK.patching.NULL_FLAG: True}
    out = wrapper(ex, x, None, None, None, None, None, None, options)
    torch.testing.assert_close(out, model.forward_anyphoto(*inputs, null), rtol=1e-9, atol=1e-9)
    assert (out - model.forward_anyphoto(*inputs, identities)).abs().max() > 1e-4
    assert (out - model(*inputs)).abs().max() > 1e-4
    assert PACK.sampler.NULL_PASS_FLAGS == {
        "trained null": PACK.patching.NULL_FLAG,
        "no identities": PACK.patching.DISABLE_FLAG,
    }
