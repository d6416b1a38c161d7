"""The FLUX VAE (``ae.safetensors``) as a diffusers ``AutoencoderKL`` built from a config in code.

Accepted key layouts: black-forest-labs / ComfyUI (``encoder.down.0.block.0.conv1.weight``,
optionally prefixed ``first_stage_model.`` or ``vae.``), converted with diffusers' single-file
helper ``convert_ldm_vae_checkpoint``; and diffusers (``encoder.down_blocks.0.resnets.0...``).

Latent spaces: the VAE's own latent ``z`` ``(N, 16, H/8, W/8)`` and FLUX's model space
``(z - shift) * scale`` (shift 0.1159, scale 0.3611). :meth:`FluxVAE.encode` returns model-space
latents (what :func:`anyphoto_core.conditioning.encode_canvas_tokens` expects); :meth:`FluxVAE.decode`
takes model-space latents and returns images in [-1, 1].
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from ...flux import read_safetensors
from ...state_dicts import assign_state_dict, state_dict_mismatch
from .errors import ModelFileError

#: diffusers ``AutoencoderKL`` config of the FLUX.1 VAE.
FLUX_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
}


def small_flux_vae_config(
    block_out_channels: list[int], layers_per_block: int, norm_num_groups: int, **overrides
) -> dict:
    """A FLUX-layout VAE config (16 latent channels, 8x, same block types) at a smaller width and depth, for
    the built-in tiny and MiniWorld sets; ``overrides`` replace any other field (e.g. ``sample_size``)."""
    base = {k: v for k, v in FLUX_VAE_CONFIG.items() if k != "force_upcast"}
    sizes = dict(
        block_out_channels=block_out_channels, layers_per_block=layers_per_block, norm_num_groups=norm_num_groups
    )
    return {**base, **sizes, **overrides}


_BFL_KEY = "encoder.down.0.block.0.conv1.weight"
_DIFFUSERS_KEY = "encoder.down_blocks.0.resnets.0.conv1.weight"


class FluxVAE:
    """A loaded VAE plus its latent-space constants. ``model``: diffusers ``AutoencoderKL``."""

    def __init__(self, model, source: str):
        self.model = model.eval().requires_grad_(False)
        self.source = source
        self.scale = float(model.config.scaling_factor)
        self.shift = float(model.config.shift_factor)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """``(N, 3, H, W)`` in [-1, 1] -> model-space latents ``(N, 16, H/8, W/8)`` float32 (posterior mode)."""
        z = self.model.encode(images.to(self.device, self.dtype)).latent_dist.mode()
        return (z.float() - self.shift) * self.scale

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Model-space latents ``(N, 16, h, w)`` -> images ``(N, 3, 8h, 8w)`` float32 in [-1, 1]."""
        z = latents.float() / self.scale + self.shift
        return self.model.decode(z.to(self.device, self.dtype)).sample.float().clamp(-1.0, 1.0)


def vae_state_dict_to_diffusers(sd: dict[str, Tensor], config: dict, source: str) -> dict[str, Tensor]:
    """Return a diffusers-layout state dict for BFL/LDM or diffusers input; refuse anything else."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    if any(k.endswith(_DIFFUSERS_KEY) for k in sd):
        prefix = next(k for k in sd if k.endswith(_DIFFUSERS_KEY))[: -len(_DIFFUSERS_KEY)]
        return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    if any(k.endswith(_BFL_KEY) for k in sd):
        return convert_ldm_vae_checkpoint(sd, config)
    some = ", ".join(sorted(sd)[:3]) or "no tensors"
    raise ModelFileError(
        f"{source} is not a VAE (no '{_BFL_KEY}'; found e.g. {some}). Pick the FLUX VAE ae.safetensors "
        "(ComfyUI: models/vae/ae.safetensors), not the transformer or a text encoder."
    )


def flux_vae_from_state_dict(
    sd: dict[str, Tensor],
    config: dict = FLUX_VAE_CONFIG,
    source: str = "state dict",
    dtype: torch.dtype = torch.float32,
    device="cpu",
) -> FluxVAE:
    """Build ``AutoencoderKL(**config)`` and load ``sd`` (BFL or diffusers layout) into it."""
    from diffusers import AutoencoderKL

    converted = vae_state_dict_to_diffusers(sd, config, source)
    with torch.device("meta"):
        model = AutoencoderKL(**config)
    mismatch = state_dict_mismatch(model, converted)
    if mismatch:
        raise ModelFileError(
            f"{source} does not match the FLUX VAE (16 latent channels): {mismatch}. "
            "Use the FLUX.1 ae.safetensors (an SD1.5/SDXL VAE has 4 latent channels and does not fit)."
        )
    assign_state_dict(model, converted, dtype)
    return FluxVAE(model.to(device), source)


def load_flux_vae(
    path: str | os.PathLike, dtype: torch.dtype = torch.float32, device="cpu", config: dict = FLUX_VAE_CONFIG
) -> FluxVAE:
    """Load a FLUX VAE safetensors file (BFL ``ae.safetensors`` or diffusers layout)."""
    source = os.fspath(path)
    try:
        sd = read_safetensors(source, "VAE")
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None
    return flux_vae_from_state_dict(sd, config, source, dtype, device)
