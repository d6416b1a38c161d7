"""AnyPhoto on ComfyUI's weight paths: fp8-stored weights, a user LoRA, lowvram partial loading. Needs COMFYUI_PATH.

Each case breaks a pack that reads a FLUX module's raw ``.weight`` instead of calling the module (whose
call routes through ``comfy.ops.cast_bias_weight``): fp8 weights cannot multiply fp32 activations, and under
lowvram the raw weight lacks the user's LoRA (ComfyUI applies it lazily as a ``LowVramPatch``).
"""

import contextlib

import pytest
import torch

from integration import comfy_harness
from integration.test_nodes_comfy import PACK, H, W, _apply, _run, _uncond_cond_call

#: Where the user's LoRA goes (LoraLoader key names): a double-block attention and two single-block linear1.
LORA_MODULES = ("double_blocks.0.img_attn.qkv", "single_blocks.0.linear1", "single_blocks.1.linear1")


def _fp8_flux(seed: int):
    """Tiny FLUX stored as float8_e4m3fn with fp32 compute (ComfyUI picks ``manual_cast`` operations)."""
    from integration.tiny_flux_pack import tiny_flux

    return tiny_flux.build_tiny_flux(seed, weight_dtype=torch.float8_e4m3fn)


def _user_lora(base, seed: int = 3, rank: int = 4):
    """``base`` with a random rank-``rank`` LoRA on :data:`LORA_MODULES`, loaded the way LoraLoader does
    (``comfy.sd.load_lora_for_models``: a clone with ``add_patches``)."""
    import comfy.sd

    dm = base.model.diffusion_model
    gen = torch.Generator().manual_seed(seed)
    lora = {}
    for path in LORA_MODULES:
        out_dim, in_dim = dm.get_submodule(path).weight.shape
        name = "lora_unet_" + path.replace(".", "_")
        lora[f"{name}.lora_up.weight"] = torch.randn(out_dim, rank, generator=gen) * 0.1
        lora[f"{name}.lora_down.weight"] = torch.randn(rank, in_dim, generator=gen) * 0.1
        lora[f"{name}.alpha"] = torch.tensor(float(rank))
    patched, _ = comfy.sd.load_lora_for_models(base, None, lora, 1.0, 0.0)
    assert {f"diffusion_model.{p}.weight" for p in LORA_MODULES} <= set(patched.patches)
    return patched


@contextlib.contextmanager
def _memory_budget(nbytes: int | None):
    """Load models as ComfyUI does on a GPU with ``nbytes`` free for weights (``None``: a full load).

    On CPU ``load_models_gpu`` always loads fully, so ``LoadedModel.model_load`` gets the budget here; the
    rest is ComfyUI's own ``partially_load`` → ``ModelPatcher.load(lowvram_model_memory=nbytes)``. Models are
    unloaded (weights restored) before and after."""
    import comfy.model_management as mm

    mm.unload_all_models()
    original = mm.LoadedModel.model_load
    if nbytes is not None:
        mm.LoadedModel.model_load = lambda self, memory=0, force_patch_weights=False: original(
            self, nbytes, force_patch_weights
        )
    try:
        yield
    finally:
        mm.LoadedModel.model_load = original
        mm.unload_all_models()


def _lowvram_budget(base) -> int:
    """Room for the largest module only: the rest of the model is cast per call."""
    return int(max(p.numel() * p.element_size() for p in base.model.diffusion_model.parameters()) * 1.5)


def _lowvram_patched(dm) -> list[str]:
    """Modules ComfyUI set to apply their weight patches lazily (``LowVramPatch`` in ``weight_function``)."""
    from comfy.model_patcher import LowVramPatch

    return [
        name
        for name, m in dm.named_modules()
        if getattr(m, "comfy_cast_weights", False)
        and any(isinstance(f, LowVramPatch) for f in getattr(m, "weight_function", []))
    ]


def _loaded_call(patcher, with_anyphoto: bool, budget: int | None = None) -> torch.Tensor:
    """:func:`_uncond_cond_call` with ``patcher`` loaded by ComfyUI under ``budget`` (None: full load)."""
    import comfy.model_management as mm

    with _memory_budget(budget):
        mm.load_models_gpu([patcher])
        if budget is not None:
            _assert_partially_loaded(patcher)
        return _uncond_cond_call(patcher, with_anyphoto)


def _assert_partially_loaded(patcher) -> list[str]:
    """Check ComfyUI loaded ``patcher`` in lowvram mode with some weight patch applied lazily; returns the
    lazily patched modules."""
    lazy = _lowvram_patched(patcher.model.diffusion_model)
    assert patcher.model.model_lowvram and lazy, "ComfyUI did not load the model partially"
    return lazy


@pytest.fixture(scope="module")
def fp32_base(comfy):
    return comfy_harness.build_tiny_flux(seed=0)


@pytest.fixture(scope="module")
def fp8_base(comfy):
    return _fp8_flux(seed=0)


def check_anyphoto_on_cast_weights(base, cast_owner, monkeypatch):
    """Checks shared by bases whose stored weights ComfyUI casts per call through ``cast_owner.cast_bias_weight``
    (fp8 storage: ``comfy.ops``; GGUF: ``GGMLLayer``): AnyPhoto sampling is finite and changes the latent; the
    identity tokens' linears go through that cast (a call sees image + identity tokens); uncond rows (identities
    hidden from global queries) equal the base's own output, cond rows differ; the base stays bit-identical and
    samples the same latent afterwards. Returns the patched clone."""
    snapshot = comfy_harness.weight_bytes(base)
    before = _run(base, cfg=1.0, batch=1)
    patched = _apply(base, 2)
    out = _run(patched, cfg=1.0, batch=1)
    assert torch.isfinite(out).all()
    assert (out - before).abs().max() > 1e-4

    ref = _loaded_call(base, with_anyphoto=False)
    widths = set()
    cast = cast_owner.cast_bias_weight

    def recording_cast(module, input=None, *args, **kwargs):
        widths.add(input.shape[1] if input is not None and input.dim() == 3 else None)
        return cast(module, input, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(cast_owner, "cast_bias_weight", recording_cast)
        hidden = _loaded_call(patched, with_anyphoto=True)
    img_tokens = (H // 16) * (W // 16)
    assert img_tokens + sum(PACK.model.identity_inputs_of(patched).lengths) in widths
    torch.testing.assert_close(hidden[0], ref[0], rtol=1e-5, atol=1e-5)
    assert (hidden[1] - ref[1]).abs().max() > 1e-4
    comfy_harness.assert_weights_unchanged(base, snapshot)
    assert torch.equal(_run(base, cfg=1.0, batch=1), before)
    return patched


def test_fp8_stored_weights(fp8_base, monkeypatch):
    """fp8 weights, fp32 compute: :func:`check_anyphoto_on_cast_weights` through ``comfy.ops.cast_bias_weight``."""
    import comfy.ops

    qkv = fp8_base.model.diffusion_model.double_blocks[0].img_attn.qkv
    assert qkv.weight.dtype == torch.float8_e4m3fn and qkv.comfy_cast_weights
    assert fp8_base.model.manual_cast_dtype == torch.float32
    check_anyphoto_on_cast_weights(fp8_base, comfy.ops, monkeypatch)


@pytest.mark.parametrize("load", ["full", "lowvram"])
def test_user_lora_is_applied_inside_anyphoto_blocks(fp32_base, load):
    """Identities hidden from the global queries (uncond row): AnyPhoto on a LoRA'd model equals that LoRA'd
    model, under a full load (LoRA patched into the weights) and under lowvram (LoRA applied per call)."""
    snapshot = comfy_harness.weight_bytes(fp32_base)
    budget = _lowvram_budget(fp32_base) if load == "lowvram" else None
    lora = _user_lora(fp32_base)
    patched = _apply(lora, 2)
    plain = _loaded_call(fp32_base, with_anyphoto=False)
    ref = _loaded_call(lora, with_anyphoto=False, budget=budget)
    out = _loaded_call(patched, with_anyphoto=True, budget=budget)
    assert (ref - plain).abs().max() > 1e-3  # the LoRA matters
    torch.testing.assert_close(out[0], ref[0], rtol=1e-5, atol=1e-5)
    assert (out[1] - ref[1]).abs().max() > 1e-4
    comfy_harness.assert_weights_unchanged(fp32_base, snapshot)


def test_lowvram_partial_load_matches_full_load(fp32_base):
    """Sampling AnyPhoto on a user-LoRA'd model: ComfyUI's lowvram partial load (LoRA as LowVramPatch, weights
    cast per call) gives the full load's latent; the raw ``.weight`` there lacks the LoRA."""
    import comfy.model_management as mm

    snapshot = comfy_harness.weight_bytes(fp32_base)
    base_before = _run(fp32_base, cfg=1.0, batch=1)
    patched = _apply(_user_lora(fp32_base), 2)
    dm = fp32_base.model.diffusion_model
    with _memory_budget(None):
        full = _run(patched, cfg=1.0, batch=1)
    with _memory_budget(_lowvram_budget(fp32_base)):
        low = _run(patched, cfg=1.0, batch=1)
        lazy = _assert_partially_loaded(patched)
        assert set(lazy) <= set(LORA_MODULES) and len(lazy) < len(LORA_MODULES)  # one LoRA module fully loaded
        raw = {k: v.view(torch.uint8) for k, v in dm.get_submodule(lazy[0]).state_dict().items()}
        assert all(torch.equal(raw[k], snapshot[f"{lazy[0]}.{k}"]) for k in raw)
        mm.unload_all_models()
    with _memory_budget(None):
        anyphoto_only = _run(_apply(fp32_base, 2), cfg=1.0, batch=1)
    torch.testing.assert_close(low, full, rtol=1e-4, atol=1e-5)
    assert (low - anyphoto_only).abs().max() > 1e-4  # the LoRA acts inside AnyPhoto's forward
    assert (low - base_before).abs().max() > 1e-4
    comfy_harness.assert_weights_unchanged(fp32_base, snapshot)
    assert torch.equal(_run(fp32_base, cfg=1.0, batch=1), base_before)
