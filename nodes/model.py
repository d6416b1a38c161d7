"""AnyPhoto Adapter Loader and AnyPhotoApply: patch a clone of a ComfyUI FLUX MODEL."""

from __future__ import annotations

import inspect
import os
from dataclasses import replace

import torch

from anyphoto_core.adapter import AdapterError, load_adapter
from anyphoto_core.conditioning import encode_canvas_tokens, identity_inputs, null_identity_inputs
from anyphoto_core.identity import IdentityInputs
from anyphoto_core.tokens import PIXELS_PER_TOKEN
from anyphoto_core.validation import check_identity_embeddings, check_identity_weights, identity_window

from . import host
from .feedback import with_warnings
from .patching import WRAPPER_KEY, AnyPhotoWrapper, NotFluxError, SigmaWindow, check_flux_model
from .types import ADAPTER, CANVAS, EMBEDS

CATEGORY = "AnyPhoto/model"


def adapter_patcher(adapter):
    """A ``comfy.model_patcher.ModelPatcher`` around an ``AnyPhotoAdapter`` so ComfyUI's model
    management loads and offloads its weights with the diffusion model (``set_additional_models``)."""
    import comfy.model_management
    import comfy.model_patcher

    return comfy.model_patcher.ModelPatcher(
        adapter,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )


class AnyPhotoAdapterLoader:
    DESCRIPTION = "Loads an AnyPhoto adapter (.safetensors) from models/anyphoto."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "adapter_name": (
                    host.safetensors_files("anyphoto"),
                    {"tooltip": "adapter file in models/anyphoto (safetensors only)"},
                )
            }
        }

    RETURN_TYPES = (ADAPTER,)
    RETURN_NAMES = ("adapter",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, adapter_name):
        import folder_paths

        if not str(adapter_name).lower().endswith(".safetensors"):
            raise AdapterError(f"{adapter_name}: AnyPhoto adapters load from .safetensors files only")
        path = folder_paths.get_full_path("anyphoto", adapter_name)
        if path is None or not os.path.isfile(path):
            raise AdapterError(f"adapter {adapter_name!r} not found in models/anyphoto")
        return (adapter_patcher(load_adapter(path)),)


def parse_weights(text: str, count: int, base: float) -> list[float]:
    """Per-person identity weights: comma list (``"1, 0.8"``), missing entries = 1; times ``base``."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    if len(items) > count:
        raise ValueError(f"{len(items)} person weights given for {count} people")
    try:
        values = [float(t) for t in items]
    except ValueError:
        raise ValueError(f"person_weights must be numbers separated by commas, got {text!r}") from None
    return check_identity_weights([base * w for w in values + [1.0] * (count - len(values))], count)


def comfy_attention(transformer_options: dict):
    """The core's ``attn_fn(q, k, v, mask)`` on ComfyUI's selected attention (sage/xformers/SDPA/...)."""
    import comfy.ldm.modules.attention as attention

    fn = attention.optimized_attention  # read per call: ComfyUI picks it at start-up
    kwargs = {"transformer_options": transformer_options} if _accepts(fn, "transformer_options") else {}

    def attn_fn(q, k, v, mask=None):
        return fn(q, k, v, q.shape[1], skip_reshape=True, mask=mask, **kwargs)

    return attn_fn


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def check_block_replace_contract(diffusion_model) -> None:
    """The FLUX forward must take ``transformer_options`` (block replacement and post_input live there)."""
    forward = getattr(diffusion_model, "forward_orig", None)
    if forward is None or not _accepts(forward, "transformer_options"):
        raise NotFluxError(
            "this ComfyUI's FLUX forward has no transformer_options (block-replace patches); update ComfyUI "
            "to v0.3.64 or newer"
        )


class AnyPhotoApply:
    DESCRIPTION = (
        "Returns a patched clone of the FLUX MODEL that adds each person's location-aligned identity "
        "tokens (isolated attention, identity-only LoRA and modulation). The input MODEL is untouched."
    )

    @classmethod
    def INPUT_TYPES(cls):
        pct = {"min": 0.0, "max": 1.0, "step": 0.01}
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "FLUX.1-dev diffusion model"}),
                "adapter": (ADAPTER, {"tooltip": "from AnyPhoto Adapter Loader"}),
                "vae": ("VAE", {"tooltip": "FLUX VAE (ae.safetensors); encodes the canvases"}),
                "canvas": (CANVAS, {"tooltip": "from AnyPhoto Build Location Canvas"}),
                "embeds": (EMBEDS, {"tooltip": "from AnyPhoto ArcFace Embed, same people in the same order"}),
                "identity_weight": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 3.0,
                        "step": 0.05,
                        "tooltip": "scales every person's identity modulation offset",
                    },
                ),
                "person_weights": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "optional per-person multipliers, comma separated (e.g. 1, 0.8); missing = 1",
                    },
                ),
                "lora_strength": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 2.0,
                        "step": 0.05,
                        "tooltip": "strength of the identity-only LoRA",
                    },
                ),
                "start_percent": (
                    "FLOAT",
                    {"default": 0.0, **pct, "tooltip": "identities act from this point of sampling"},
                ),
                "end_percent": (
                    "FLOAT",
                    {"default": 1.0, **pct, "tooltip": "identities act until this point of sampling"},
                ),
            }
        }

    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(
        self,
        model,
        adapter,
        vae,
        canvas,
        embeds,
        identity_weight,
        person_weights,
        lora_strength,
        start_percent,
        end_percent,
    ):
        import comfy.patcher_extension

        notices = identity_window(start_percent, end_percent)
        dm = model.model.diffusion_model
        depth, singles = check_flux_model(dm)
        check_block_replace_contract(dm)
        core = adapter.model
        cfg = core.config
        if (cfg.hidden_size, cfg.depth, cfg.depth_single_blocks) != (dm.hidden_size, depth, singles):
            raise AdapterError(
                f"the adapter was made for hidden {cfg.hidden_size}, {cfg.depth} double / {cfg.depth_single_blocks} "
                f"single blocks; this model has hidden {dm.hidden_size}, {depth} / {singles}"
            )
        count = len(canvas.canvases)
        if embeds.count != count:
            raise ValueError(
                f"{count} canvases but {embeds.count} embeddings: feed AnyPhoto Build Location Canvas "
                "and AnyPhoto ArcFace Embed from the same AnyPhoto Load Face Refs"
            )
        chosen, recipe_notices = embeds.for_adapter(cfg)
        notices = [*notices, *recipe_notices]
        embeddings = check_identity_embeddings(chosen, cfg.embedding_dim)
        bar = host.progress_bar(3)
        tokens = encode_canvas_tokens(
            list(canvas.canvases),
            lambda x: _vae_encode(vae, model, x),
            rule=cfg.token_rule,
            type_index=cfg.type_index,
        )
        bar.update(1)
        with torch.no_grad():
            inputs = identity_inputs(
                core,
                tokens,
                torch.from_numpy(embeddings),
                parse_weights(person_weights, count, identity_weight),
                lora_strength,
            )
        inputs = inputs.to("cpu")
        bar.update(1)
        ms = model.get_model_object("model_sampling")
        window = SigmaWindow(float(ms.percent_to_sigma(start_percent)), float(ms.percent_to_sigma(end_percent)))
        chain_key = (core, float(lora_strength), window)
        previous = anyphoto_wrapper_of(model)
        if previous is not None:  # a chain: one pass over the identities of every Apply, each isolated
            inputs = chained_inputs(previous, inputs, chain_key)
        null_inputs = null_identity_inputs(core, inputs)  # every identity of the chain, dropped
        patched = model.clone()
        patched.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY)
        patched.add_wrapper_with_key(
            comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL,
            WRAPPER_KEY,
            AnyPhotoWrapper(inputs, window, comfy_attention, chain_key, null_inputs),
        )
        patched.set_additional_models(WRAPPER_KEY, [adapter])
        bar.update(1)
        return with_warnings((patched,), notices)


def _vae_encode(vae, model, images: torch.Tensor) -> torch.Tensor:
    """Core encode contract ((N, 3, H, W) in [-1, 1] -> model-space latents) on ComfyUI's VAE."""
    pixels = ((images.permute(0, 2, 3, 1) + 1.0) / 2.0).clamp(0, 1)
    latent = vae.encode(pixels)
    return model.model.process_latent_in(latent).float().cpu()


def anyphoto_wrapper_of(model) -> AnyPhotoWrapper | None:
    """The wrapper AnyPhotoApply attached to ``model`` (a ModelPatcher), or None if it is not patched."""
    import comfy.patcher_extension

    wrappers = model.get_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY)
    return next((w for w in wrappers or [] if isinstance(w, AnyPhotoWrapper)), None)


def identity_inputs_of(model) -> IdentityInputs | None:
    """The identity inputs AnyPhotoApply attached to ``model`` (a ModelPatcher), or None if not patched."""
    wrapper = anyphoto_wrapper_of(model)
    return None if wrapper is None else wrapper.inputs


def chained_inputs(previous: AnyPhotoWrapper, inputs: IdentityInputs, chain_key: tuple) -> IdentityInputs:
    """The identities of an earlier AnyPhoto Apply (``previous``) followed by ``inputs``, as one
    :class:`IdentityInputs`: every identity keeps its own tokens, ids and modulation offset, so each is
    isolated and modulated as if one Apply had all the people. ``ValueError`` unless both use the same
    adapter, lora_strength, start/end (``chain_key``) and canvas size."""
    earlier = previous.inputs
    if previous.chain_key != chain_key:
        raise ValueError(
            f"this MODEL already went through an AnyPhoto Apply with {len(earlier.lengths)} people and another "
            "adapter, lora_strength or start/end percent; chained AnyPhoto Apply nodes can only add people with "
            "the same adapter (one AnyPhoto Adapter Loader), lora_strength, start_percent and end_percent. Make "
            "them equal, or give all people to one AnyPhoto Apply"
        )
    if tuple(earlier.grid) != tuple(inputs.grid):
        p = PIXELS_PER_TOKEN
        raise ValueError(
            f"chained AnyPhoto Apply nodes have canvases of different sizes ({earlier.grid[1] * p}x"
            f"{earlier.grid[0] * p} and {inputs.grid[1] * p}x{inputs.grid[0] * p} px); use one size for all"
        )
    return replace(
        inputs,
        tokens=torch.cat([earlier.tokens, inputs.tokens.to(earlier.tokens)], dim=1),
        ids=torch.cat([earlier.ids, inputs.ids.to(earlier.ids)], dim=0),
        lengths=tuple(earlier.lengths) + tuple(inputs.lengths),
        delta=torch.cat([earlier.delta, inputs.delta.to(earlier.delta)], dim=0),
    )
