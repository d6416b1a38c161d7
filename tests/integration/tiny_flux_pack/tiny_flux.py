"""A tiny random-weight FLUX built from ComfyUI's own classes (test-only; needs ComfyUI importable).

ComfyUI v0.3.64 cannot load a small FLUX through UNETLoader (model detection hard-codes hidden 3072 and
context 4096), so the model is built by the bypass route: ``supported_models.Flux(unet_config)`` →
``set_inference_dtype(float32)`` → ``get_model`` → ``load_state_dict(random weights)`` → ``ModelPatcher``.
The result is a genuine ``comfy.model_patcher.ModelPatcher`` around ``model_base.Flux`` around
``ldm.flux.model.Flux``, so every ComfyUI hook (wrappers, patches, block replacement) behaves as with the
real FLUX.1-dev, just with small dimensions.

Shapes: the latent is ``[B, 16, H/8, W/8]`` (FLUX latent format), the text conditioning
``[B, n_txt, context_in_dim]`` with ``pooled_output`` ``[B, vec_in_dim]``.
"""

from __future__ import annotations

import torch

LATENT_CHANNELS = 16


def tiny_flux_config(
    hidden_size: int = 128,
    num_heads: int = 2,
    depth: int = 2,
    depth_single_blocks: int = 2,
    context_in_dim: int = 64,
    vec_in_dim: int = 32,
    guidance_embed: bool = True,
) -> dict:
    """The ``unet_config`` of a small FLUX.1-dev-shaped model.

    ``axes_dim`` (RoPE split of one head, [index, row, col]) is derived from the head size with FLUX's
    16/56/56-of-128 proportions, rounded to even sizes: head 64 → [8, 28, 28], head 128 → [16, 56, 56].
    """
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
    head_dim = hidden_size // num_heads
    spatial = (head_dim * 7 // 16) // 2 * 2
    axes_dim = [head_dim - 2 * spatial, spatial, spatial]
    if head_dim % 2 or min(axes_dim) <= 0:
        raise ValueError(f"head size {head_dim} (hidden_size / num_heads) must be even and at least 8")
    return {
        "image_model": "flux",
        "in_channels": LATENT_CHANNELS,
        "out_channels": LATENT_CHANNELS,
        "patch_size": 2,
        "vec_in_dim": vec_in_dim,
        "context_in_dim": context_in_dim,
        "hidden_size": hidden_size,
        "mlp_ratio": 4.0,
        "num_heads": num_heads,
        "depth": depth,
        "depth_single_blocks": depth_single_blocks,
        "axes_dim": axes_dim,
        "theta": 10000,
        "qkv_bias": True,
        "guidance_embed": guidance_embed,
    }


def random_flux_state_dict(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights for every tensor of ``model``: N(0, 0.02²), RMSNorm ``scale`` = 1."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, tensor in model.state_dict().items():
        if name.endswith(".scale"):
            out[name] = torch.ones(tensor.shape, dtype=torch.float32)
        else:
            out[name] = torch.randn(tensor.shape, generator=gen, dtype=torch.float32) * 0.02
    return out


def build_tiny_flux(seed: int = 0, weight_dtype: torch.dtype = torch.float32, **config):
    """A ComfyUI ``ModelPatcher`` around a tiny random-weight FLUX. ``config``: see tiny_flux_config.

    ``weight_dtype`` other than float32 stores the weights in it with float32 compute, as
    ``load_diffusion_model_state_dict`` configures an fp8 checkpoint (ComfyUI picks ``manual_cast`` ops).
    """
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models

    model_config = comfy.supported_models.Flux(tiny_flux_config(**config))
    model_config.set_inference_dtype(weight_dtype, None if weight_dtype == torch.float32 else torch.float32)
    base = model_config.get_model({})
    base.diffusion_model.load_state_dict(random_flux_state_dict(base.diffusion_model, seed))
    return comfy.model_patcher.ModelPatcher(
        base, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )


def random_conditioning(patcher, seed: int, tokens: int = 16, batch: int = 1, guidance: float = 3.5) -> list:
    """Random ComfyUI CONDITIONING matching the model's text widths.

    Returns ``[[cond [batch, tokens, context_in_dim], {"pooled_output": [batch, vec_in_dim], "guidance"}]]``.
    """
    params = patcher.model.diffusion_model.params
    gen = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, tokens, params.context_in_dim, generator=gen)
    pooled = torch.randn(batch, params.vec_in_dim, generator=gen)
    return [[cond, {"pooled_output": pooled, "guidance": guidance}]]


def latent_to_image(samples: torch.Tensor) -> torch.Tensor:
    """A viewable stand-in for a VAE decode: latent ``[B, 16, h, w]`` → IMAGE ``[B, 8h, 8w, 3]`` in (0, 1).

    Channels 0-2 through a sigmoid, nearest-upsampled ×8. Only for tests: there is no tiny VAE.
    """
    rgb = torch.sigmoid(samples[:, :3].float())
    rgb = torch.nn.functional.interpolate(rgb, scale_factor=8, mode="nearest")
    return rgb.permute(0, 2, 3, 1).contiguous()
