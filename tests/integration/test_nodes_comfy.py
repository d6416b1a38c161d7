"""AnyPhoto nodes on a real ComfyUI (tiny FLUX from ComfyUI's own classes). Needs COMFYUI_PATH."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from anyphoto_core.canvas import LocationCanvas
from anyphoto_core.embeddings import IdentityEmbeddings
from anyphoto_core.placements import Placement
from integration import comfy_harness
from integration.anyphoto_pack import load_pack
from tests.tiny import tiny_adapter

PACK = load_pack()

ROOT = comfy_harness.Path(__file__).resolve().parents[2]
W, H = 96, 64


class FakeVAE:
    """Deterministic stand-in for ComfyUI's VAE: BHWC [0,1] -> (B, 16, H/8, W/8)."""

    def encode(self, pixels):
        x = pixels.permute(0, 3, 1, 2) * 2 - 1
        pooled = torch.nn.functional.avg_pool2d(x, 8)
        proj = torch.linspace(-1, 1, 48).reshape(16, 3)
        return torch.einsum("bchw,oc->bohw", pooled, proj)


def _canvas_set(n):
    CanvasSet = PACK.types.CanvasSet
    canvases, placements = [], []
    rng = np.random.default_rng(n)
    for k in range(n):
        mask = np.zeros((H, W), bool)
        x0 = 8 + 28 * k
        mask[16:48, x0 : x0 + 24] = True
        img = np.full((H, W, 3), 255, np.uint8)
        img[mask] = rng.integers(0, 255, (mask.sum(), 3))
        canvases.append(LocationCanvas(img, mask, 1.0, (x0, 16), (24, 32)))
        placements.append(Placement.from_box((x0, 16, x0 + 24, 48)))
    return CanvasSet(tuple(canvases), tuple(placements), (W, H))


def _embeds(n):
    e = np.random.default_rng(7).normal(size=(n, 512)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return IdentityEmbeddings(e, e)


@pytest.fixture(scope="module")
def base(comfy):
    return comfy_harness.build_tiny_flux(seed=0)


def _adapter_for(base):
    from anyphoto_core.flux import FluxParams

    adapter_patcher = PACK.model.adapter_patcher

    dm = base.model.diffusion_model
    params = FluxParams(
        hidden_size=dm.hidden_size,
        num_heads=dm.num_heads,
        depth=len(dm.double_blocks),
        depth_single_blocks=len(dm.single_blocks),
    )
    return adapter_patcher(tiny_adapter(params).float())


def _apply(base, n, **kw):
    AnyPhotoApply = PACK.model.AnyPhotoApply
    args = dict(identity_weight=1.0, person_weights="", lora_strength=1.0, start_percent=0.0, end_percent=1.0)
    args.update(kw)
    out = AnyPhotoApply().apply(base, _adapter_for(base), FakeVAE(), _canvas_set(n), _embeds(n), **args)
    return out["result"][0]


def _run(patcher, cfg, batch=2, seed=0):
    pos = comfy_harness.random_conditioning(patcher, 1)
    neg = comfy_harness.random_conditioning(patcher, 2)
    latent = comfy_harness.empty_latent(W, H, batch)
    return comfy_harness.sample(patcher, pos, neg, latent, steps=3, cfg=cfg, seed=seed)


def _uncond_cond_inputs(dm, seed: int = 0):
    """Inputs of one ``Flux.forward`` on batch [uncond, cond] (one prompt, t = 0.6, guidance 3.5): ``x``
    [2, 16, H/8, W/8], ``t`` [2], ``context`` [2, 7, context_in_dim], ``y`` [2, vec_in_dim], ``guidance`` [2]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, H // 8, W // 8, generator=g)
    ctx = torch.randn(1, 7, dm.params.context_in_dim, generator=g).expand(2, -1, -1)
    y = torch.randn(1, dm.params.vec_in_dim, generator=g).expand(2, -1)
    return x, torch.tensor([0.6, 0.6]), ctx, y, torch.tensor([3.5, 3.5])


def _uncond_cond_call(patcher, with_anyphoto: bool, seed: int = 0) -> torch.Tensor:
    """ComfyUI's own ``Flux.forward`` of ``patcher``'s diffusion model on :func:`_uncond_cond_inputs`, with or
    without ``patcher``'s AnyPhoto wrapper. Returns ``[2, 16, H/8, W/8]``."""
    import comfy.patcher_extension

    dm = patcher.model.diffusion_model
    x, t, ctx, y, guidance = _uncond_cond_inputs(dm, seed)
    options = {"cond_or_uncond": [1, 0], "sigmas": t}
    if with_anyphoto:
        key = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL
        options["wrappers"] = {key: {"anyphoto": patcher.get_all_wrappers(key)}}
    with torch.no_grad():
        return dm(x, t, ctx, y=y, guidance=guidance, transformer_options=options)


@pytest.mark.parametrize("people", [1, 3])
@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_apply_changes_output_and_leaves_base_bit_identical(base, people, cfg):
    before = _run(base, cfg)
    patched = _apply(base, people)
    out = _run(patched, cfg)
    after = _run(base, cfg)
    assert out.shape == before.shape and torch.isfinite(out).all()
    assert (out - before).abs().max() > 1e-4
    assert torch.equal(before, after)


def test_identities_hidden_from_global_queries_reproduce_base(base):
    """Batch [uncond, cond] through ComfyUI's Flux.forward with the pack's wrapper: the uncond row, whose
    global queries do not see the identities, equals the unpatched model; the cond row differs."""
    patched = _apply(base, 3)
    ref = _uncond_cond_call(base, with_anyphoto=False)
    out = _uncond_cond_call(patched, with_anyphoto=True)
    torch.testing.assert_close(out[0], ref[0], rtol=1e-5, atol=1e-5)
    assert (out[1] - ref[1]).abs().max() > 1e-4


def test_node_weights_and_lora_strength_are_exact_and_match_the_core_reference(base):
    """AnyPhotoApply with identity_weight 0.5, person_weights "2, 1" and lora_strength 0.3: the offsets and the
    LoRA are scaled exactly, and ComfyUI's own Flux forward through the pack's wrapper equals the core
    reference FLUX (same weights) fed with independently scaled identity inputs."""
    import dataclasses

    from anyphoto_core.flux import flux_from_state_dict
    from anyphoto_core.tokens import image_token_ids, pack_latent, unpack_tokens

    adapter = _adapter_for(base)
    core = adapter.model
    embeds = _embeds(2)
    patched = PACK.model.AnyPhotoApply().apply(
        base, adapter, FakeVAE(), _canvas_set(2), embeds, 0.5, "2, 1", 0.3, 0.0, 1.0
    )["result"][0]
    inputs = PACK.model.identity_inputs_of(patched)
    with torch.no_grad():
        want = core.modulation_offsets(torch.from_numpy(embeds.gallery_mean)).float() * torch.tensor([[1.0], [0.5]])
        torch.testing.assert_close(inputs.delta, want, rtol=0, atol=0)
        x_id = torch.randn(3, core.config.hidden_size)
        path = "double_blocks.0.img_attn.qkv"
        torch.testing.assert_close(inputs.lora_delta(path, x_id), 0.3 * core.lora_delta(path, x_id), rtol=0, atol=0)

    dm = base.model.diffusion_model
    x, t, ctx, y, guidance = _uncond_cond_inputs(dm, seed=1)
    out = _uncond_cond_call(patched, with_anyphoto=True, seed=1)
    reference_model = flux_from_state_dict(dict(dm.state_dict()), dtype=torch.float32)
    independent = dataclasses.replace(inputs, delta=want, lora_delta=core.lora_function(0.3))
    h_tok, w_tok = H // 16, W // 16
    with torch.no_grad():
        ref = reference_model.forward_anyphoto(
            pack_latent(x),
            image_token_ids(h_tok, w_tok)[None].expand(2, -1, -1),
            ctx,
            torch.zeros(2, ctx.shape[1], 3),
            t,
            y,
            guidance,
            independent,
            global_sees_identities=torch.tensor([False, True]),
        )
    torch.testing.assert_close(out, unpack_tokens(ref, h_tok, w_tok), rtol=1e-4, atol=1e-4)


def test_latent_size_mismatch_is_a_clear_error(base):
    patched = _apply(base, 1)
    pos = comfy_harness.random_conditioning(patched, 1)
    with pytest.raises(ValueError, match=r"latent is 64x64 px but the AnyPhoto canvas is 96x64"):
        comfy_harness.sample(patched, pos, pos, comfy_harness.empty_latent(64, 64, 1), steps=1)


def test_non_flux_model_is_refused(comfy):
    NotFluxError, check_flux_model = PACK.patching.NotFluxError, PACK.patching.check_flux_model
    with pytest.raises(NotFluxError, match="FLUX.1"):
        check_flux_model(torch.nn.Linear(2, 2))


def test_core_block_forwards_equal_comfy_blocks_without_visible_identities(base):
    from anyphoto_core.blocks import IdentityContext, double_block_forward, single_block_forward
    from anyphoto_core.tokens import image_token_ids

    dm = base.model.diffusion_model
    c, n_txt, n_img = dm.hidden_size, 5, 12
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(2, n_img, c, generator=g), torch.randn(2, n_txt, c, generator=g)
    vec = torch.randn(2, c, generator=g)
    ids = torch.cat([torch.zeros(n_txt, 3), image_token_ids(3, 4)])[None].expand(2, -1, -1)
    pe = dm.pe_embedder(ids)
    ctx = IdentityContext(lengths=(0,), id_vec=vec[:, None], attn_fn=PACK.model.comfy_attention({}))
    with torch.no_grad():
        ref_img, ref_txt = dm.double_blocks[0](img=img.clone(), txt=txt.clone(), vec=vec, pe=pe)  # it adds in place
        out_img, out_txt = double_block_forward(dm.double_blocks[0], img, txt, vec, pe, ctx, "double_blocks.0")
        x = torch.cat([txt, img], 1)
        ref_x = dm.single_blocks[0](x.clone(), vec=vec, pe=pe)
        out_x = single_block_forward(dm.single_blocks[0], x, vec, pe, ctx, "single_blocks.0")
    torch.testing.assert_close(out_img, ref_img, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_txt, ref_txt, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_x, ref_x, rtol=1e-5, atol=1e-5)


def test_pack_loads_in_comfyui(tmp_path):
    (tmp_path / "custom_nodes").mkdir()
    (tmp_path / "custom_nodes" / "anyphoto").symlink_to(ROOT, target_is_directory=True)
    proc = subprocess.run(
        [sys.executable, "main.py", "--cpu", "--quick-test-for-ci", "--base-directory", str(tmp_path)],
        cwd=comfy_harness.comfyui_path(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "IMPORT FAILED" not in log or "anyphoto" not in log.split("IMPORT FAILED", 1)[1][:300], log[-3000:]
    assert "anyphoto" in log


def test_start_equal_to_end_is_a_visible_warning(base):
    AnyPhotoApply, ui_key = PACK.model.AnyPhotoApply, PACK.feedback.UI_KEY
    args = dict(identity_weight=1.0, person_weights="", lora_strength=1.0)
    on = AnyPhotoApply().apply(
        base, _adapter_for(base), FakeVAE(), _canvas_set(1), _embeds(1), **args, start_percent=0.2, end_percent=0.6
    )
    assert on["ui"][ui_key] == []
    off = AnyPhotoApply().apply(
        base, _adapter_for(base), FakeVAE(), _canvas_set(1), _embeds(1), **args, start_percent=0.5, end_percent=0.5
    )
    (message,) = off["ui"][ui_key]
    assert message.startswith("start_percent equals end_percent (0.5): no sampling step uses the identities")


def _split(n):
    """``_canvas_set(n)`` / ``_embeds(n)`` as one single-person CanvasSet and IdentityEmbeddings per person."""
    CanvasSet = PACK.types.CanvasSet
    canvases, embeds = _canvas_set(n), _embeds(n)
    return [
        (
            CanvasSet((canvases.canvases[k],), (canvases.placements[k],), canvases.size),
            IdentityEmbeddings(embeds.gallery_mean[k : k + 1], embeds.reference[k : k + 1], embeds.recognizer),
        )
        for k in range(n)
    ]


def test_chained_apply_nodes_compose_like_one_apply_with_all_people(base):
    """Person 1 by one AnyPhoto Apply, person 2 by a second one on its output: the same latent as one Apply
    with both people (each identity isolated, with its own modulation), not the second Apply alone."""
    apply, adapter = PACK.model.AnyPhotoApply().apply, _adapter_for(base)
    args = dict(identity_weight=1.0, person_weights="", lora_strength=1.0, start_percent=0.0, end_percent=1.0)
    (c1, e1), (c2, e2) = _split(2)
    first = apply(base, adapter, FakeVAE(), c1, e1, **args)["result"][0]
    chained = apply(first, adapter, FakeVAE(), c2, e2, **args)["result"][0]
    together = apply(base, adapter, FakeVAE(), _canvas_set(2), _embeds(2), **args)["result"][0]
    second_only = apply(base, adapter, FakeVAE(), c2, e2, **args)["result"][0]
    assert PACK.model.identity_inputs_of(chained).lengths == PACK.model.identity_inputs_of(together).lengths
    out = _run(chained, cfg=1.0, batch=1)
    torch.testing.assert_close(out, _run(together, cfg=1.0, batch=1), rtol=1e-5, atol=1e-5)
    assert (out - _run(second_only, cfg=1.0, batch=1)).abs().max() > 1e-4
    assert (_run(first, cfg=1.0, batch=1) - _run(together, cfg=1.0, batch=1)).abs().max() > 1e-4


def test_chained_apply_with_another_recipe_is_refused(base):
    apply, adapter = PACK.model.AnyPhotoApply().apply, _adapter_for(base)
    args = dict(identity_weight=1.0, person_weights="", start_percent=0.0, end_percent=1.0)
    (c1, e1), (c2, e2) = _split(2)
    first = apply(base, adapter, FakeVAE(), c1, e1, lora_strength=1.0, **args)["result"][0]
    with pytest.raises(ValueError, match="chained AnyPhoto Apply nodes can only add people with the same adapter"):
        apply(first, adapter, FakeVAE(), c2, e2, lora_strength=0.5, **args)
    with pytest.raises(ValueError, match="same adapter"):
        apply(first, _adapter_for(base), FakeVAE(), c2, e2, lora_strength=1.0, **args)
