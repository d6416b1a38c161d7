"""Frozen models of training: FLUX transformer, VAE, text encoders, differentiable ArcFace.

``anyphoto_core`` has no model loaders for the VAE and text encoders yet, so this module holds the
smallest ones the trainer needs (diffusers ``AutoencoderKL``, transformers CLIP-L + T5 from local
folders). ``model.kind: tiny`` builds random tiny models of the same interfaces (tests, demos).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from anyphoto_core.blocks import IdentityContext, double_block_forward, single_block_forward
from anyphoto_core.faces import TorchArcFace
from anyphoto_core.flux import Flux, FluxParams, IdentityBatch, load_flux

from .config import ModelConfig

#: FLUX VAE latent normalization (diffusers config of black-forest-labs/FLUX.1-dev/vae).
FLUX_SHIFT, FLUX_SCALE = 0.1159, 0.3611


class LatentCodec:
    """A frozen diffusers ``AutoencoderKL`` in FLUX's latent space.

    ``encode``: ``(N, 3, H, W)`` in [-1, 1] -> ``(N, C, H/8, W/8)`` ``(mode - shift) * scale`` (no
    grad); ``decode``: the inverse, differentiable with respect to the latent.
    """

    def __init__(self, vae: nn.Module):
        self.vae = vae.eval().requires_grad_(False)
        cfg = vae.config
        self.shift = float(cfg.shift_factor) if cfg.shift_factor is not None else 0.0
        self.scale = float(cfg.scaling_factor)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        z = self.vae.encode(images.to(self.device, self.dtype)).latent_dist.mode()
        return (z - self.shift) * self.scale

    def decode(self, latents: Tensor) -> Tensor:
        return self.vae.decode(latents.to(self.dtype) / self.scale + self.shift).sample


class TextEncoder(Protocol):
    def __call__(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """captions -> ``txt`` (B, L, context_dim) and pooled ``y`` (B, vec_dim), float32."""


class HashTextEncoder:
    """Tiny stand-in: a fixed random embedding per caption (seeded by its SHA-256), for tests/demos."""

    def __init__(self, context_dim: int, vec_dim: int, length: int = 8):
        self.context_dim, self.vec_dim, self.length = context_dim, vec_dim, length

    def __call__(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        txt, y = [], []
        for c in captions:
            g = torch.Generator().manual_seed(int(hashlib.sha256(c.encode()).hexdigest()[:15], 16))
            txt.append(torch.randn(self.length, self.context_dim, generator=g))
            y.append(torch.randn(self.vec_dim, generator=g))
        return torch.stack(txt), torch.stack(y)


class FluxTextEncoders:
    """CLIP-L (pooled ``y``, 768) + T5-XXL encoder (``txt``, 4096) from local transformers folders."""

    def __init__(self, clip_dir: str, t5_dir: str, max_length: int = 512, device="cpu", dtype=torch.bfloat16):
        from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

        for d in (clip_dir, t5_dir):
            if not Path(d).is_dir():
                raise FileNotFoundError(f"text encoder folder not found: {d} (set model.clip / model.t5)")
        self.clip_tok = CLIPTokenizer.from_pretrained(clip_dir)
        self.clip = CLIPTextModel.from_pretrained(clip_dir, torch_dtype=dtype, use_safetensors=True).to(device).eval()
        self.t5_tok = T5TokenizerFast.from_pretrained(t5_dir)
        self.t5 = T5EncoderModel.from_pretrained(t5_dir, torch_dtype=dtype, use_safetensors=True).to(device).eval()
        self.max_length, self.device = max_length, device

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        clip = self.clip_tok(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        y = self.clip(clip.input_ids.to(self.device)).pooler_output
        t5 = self.t5_tok(captions, padding="max_length", max_length=self.max_length, truncation=True,
                         return_tensors="pt")
        txt = self.t5(t5.input_ids.to(self.device)).last_hidden_state
        return txt.float(), y.float()


class CachedTextEncoder:
    """Disk cache of another encoder's outputs: ``<folder>/<sha256(caption)>.safetensors``."""

    def __init__(self, inner: TextEncoder, folder: str | Path):
        self.inner, self.folder = inner, Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        txt, y = [], []
        for c in captions:
            path = self.folder / f"{hashlib.sha256(c.encode()).hexdigest()}.safetensors"
            if path.is_file():
                t = load_file(path)
            else:
                a, b = self.inner([c])
                t = {"txt": a[0].cpu().contiguous(), "y": b[0].cpu().contiguous()}
                save_file(t, f"{path}.tmp")
                Path(f"{path}.tmp").replace(path)
            txt.append(t["txt"])
            y.append(t["y"])
        return torch.stack(txt), torch.stack(y)


def tiny_vae(seed: int = 0) -> nn.Module:
    """A random 4-level diffusers AutoencoderKL (16 latent channels, factor 8), a few thousand weights."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=4, mid_block_add_attention=False,
        shift_factor=FLUX_SHIFT, scaling_factor=FLUX_SCALE,
    )


@dataclass
class FrozenModels:
    flux: Flux
    codec: LatentCodec
    text: TextEncoder
    recognizer: TorchArcFace | None


def build_models(config: ModelConfig, device="cpu", dtype=torch.float32, need_recognizer: bool = True) -> FrozenModels:
    """Load (``kind: flux``) or build (``kind: tiny``) the frozen models, all ``requires_grad=False``."""
    if config.kind == "tiny":
        torch.manual_seed(config.seed)
        flux = Flux(FluxParams.tiny())
        codec = LatentCodec(tiny_vae(config.seed))
        text: TextEncoder = HashTextEncoder(flux.params.context_in_dim, flux.params.vec_in_dim)
    else:
        from diffusers import AutoencoderKL

        flux = load_flux(config.flux, dtype=dtype, device=device)
        if not Path(config.vae).is_dir():
            raise FileNotFoundError(f"VAE folder not found: {config.vae!r} (diffusers AutoencoderKL; set model.vae)")
        codec = LatentCodec(AutoencoderKL.from_pretrained(config.vae, torch_dtype=dtype, use_safetensors=True))
        text = FluxTextEncoders(config.clip, config.t5, config.t5_max_length, device, dtype)
    if config.text_cache:
        text = CachedTextEncoder(text, config.text_cache)
    recognizer = None
    if need_recognizer:
        if not config.recognizer:
            raise FileNotFoundError("the face loss needs model.recognizer (ArcFace ONNX, e.g. antelopev2/glintr100.onnx)")
        recognizer = TorchArcFace(config.recognizer)
    flux.requires_grad_(False).eval().to(device, dtype)
    codec.vae.to(device, dtype)
    if recognizer is not None:
        recognizer.to(device)
    return FrozenModels(flux, codec, text, recognizer)


def checkpointed_anyphoto_forward(flux: Flux, img: Tensor, img_ids: Tensor, txt: Tensor, txt_ids: Tensor,
                                  timesteps: Tensor, y: Tensor, guidance: Tensor | None, identities: IdentityBatch,
                                  lora_delta) -> Tensor:
    """:meth:`Flux.forward_anyphoto` (isolated attention, identities present) with every block's AnyPhoto
    forward under ``torch.utils.checkpoint``. Same core calls in the same order; the test
    ``test_checkpointed_forward_equals_core`` holds it equal to the core forward and its gradients."""
    n_img = img.shape[1]
    vec = flux.conditioning_vector(timesteps, y, guidance)
    img = torch.cat([flux.img_in(img), flux.img_in(identities.tokens.to(img.dtype))], dim=1)
    txt = flux.txt_in(txt)
    ids = torch.cat([img_ids.float(), identities.ids.float()], dim=1)
    ctx = IdentityContext(lengths=identities.lengths, id_vec=vec[:, None, :] + identities.delta.to(vec.dtype),
                          lora_delta=lora_delta)
    pe = flux.pe_embedder(torch.cat((txt_ids.float(), ids), dim=1))
    for i, block in enumerate(flux.double_blocks):
        img, txt = checkpoint(double_block_forward, block, img, txt, vec, pe, ctx, f"double_blocks.{i}",
                              use_reentrant=False)
    x = torch.cat((txt, img), dim=1)
    for i, block in enumerate(flux.single_blocks):
        x = checkpoint(single_block_forward, block, x, vec, pe, ctx, f"single_blocks.{i}", use_reentrant=False)
    return flux.final_layer(x[:, txt.shape[1]: txt.shape[1] + n_img], vec)
