"""Frozen models of training: FLUX transformer, VAE, text encoders (with an optional disk cache) and the
differentiable ArcFace.

All weights load through the standalone pipeline's loaders (:class:`anyphoto_core.app.pipeline.AnyPhotoPipeline`:
``load_flux``, ``load_flux_vae`` = diffusers ``AutoencoderKL`` with FLUX shift/scale, transformers CLIP-L
and T5 from single safetensors files, local tokenizers). ``model.kind: tiny`` uses the core's built-in
tiny random-weight set (``anyphoto_core.app.models.tiny``), ``miniworld`` the trained MiniWorld set
(``anyphoto_core.app.models.miniworld``, docs/miniworld.md). What is trainer-specific lives here: the
choice between the text-embedding cache (:mod:`train.text_cache`, encoders not loaded) and live encoders,
and a VAE decode that keeps the graph (the face loss differentiates through it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from anyphoto_core.app.models import TextEncoders
from anyphoto_core.app.models.text_encoders import load_text_encoders
from anyphoto_core.app.models.vae import FluxVAE, load_flux_vae
from anyphoto_core.app.pipeline import AnyPhotoPipeline
from anyphoto_core.faces import TorchArcFace
from anyphoto_core.flux import Flux, load_flux

from .config import ModelConfig
from .sharding import shard_linears
from .text_cache import TextCache

#: caption -> ``txt`` (1, L, context_dim) and pooled ``y`` (1, vec_dim), float32 (``TextEncoders.encode``).
EncodeText = Callable[[str], tuple[Tensor, Tensor]]


def decode_with_grad(vae: FluxVAE, latents: Tensor) -> Tensor:
    """Model-space latents ``(N, 16, h, w)`` -> images ``(N, 3, 8h, 8w)`` in about [-1, 1], differentiable
    with respect to ``latents`` (``FluxVAE.decode`` runs under ``no_grad`` and clamps)."""
    z = latents / vae.scale + vae.shift
    return vae.model.decode(z.to(vae.dtype)).sample


@dataclass
class FrozenModels:
    """``flux`` frozen transformer; ``vae`` :class:`FluxVAE`; ``text`` caption -> ``(txt, y)``;
    ``recognizer`` differentiable ArcFace (None when neither the face loss nor reference embeddings need it)."""

    flux: Flux
    vae: FluxVAE
    text: EncodeText
    recognizer: TorchArcFace | None


def load_text_encoders_for(config: ModelConfig, device="cpu", dtype=torch.float32) -> TextEncoders:
    """CLIP-L + T5 of ``config`` (``kind: tiny``: the built-in tiny pair) with the configured T5 lengths."""
    if config.kind in ("tiny", "miniworld"):  # the MiniWorld set uses the tiny text encoders
        encoders = AnyPhotoPipeline.tiny(folder=config.tiny_dir or None).text_encoders
    else:
        _check_files(config, ("clip_l", "t5"))
        roots = [config.tokenizers or None, os.environ.get("COMFYUI_PATH")]
        encoders = load_text_encoders(config.clip_l, config.t5, roots, dtype, device)
    encoders.t5_min_length, encoders.t5_max_length = config.t5_min_length, config.t5_max_length
    return encoders


def _check_files(config: ModelConfig, roles) -> None:
    for role in roles:
        if not Path(getattr(config, role)).is_file():
            raise FileNotFoundError(f"model.{role} file not found: {getattr(config, role)!r} (set model.{role})")


def build_models(config: ModelConfig, device="cpu", dtype=torch.float32, need_recognizer: bool = True) -> FrozenModels:
    """Load the frozen models (``kind: flux``: local files; ``kind: tiny``: the built-in tiny set), all
    ``requires_grad=False``, on ``device`` in ``dtype`` (tiny: float32); with ``model.shard_flux`` FLUX is loaded
    on the CPU and each process keeps only its shards on ``device`` (:mod:`train.sharding`; needs the process
    group). With ``model.text_cache`` the captions
    come from the cache (:class:`~train.text_cache.TextCache`) and the text encoders are not loaded at all."""
    cache = TextCache(config.text_cache, config.t5_min_length, config.t5_max_length) if config.text_cache else None
    flux_device = "cpu" if config.shard_flux else device  # sharded: only this process's shards reach ``device``
    if config.kind in ("tiny", "miniworld"):
        if config.kind == "tiny":
            pipe = AnyPhotoPipeline.tiny(folder=config.tiny_dir or None)
        else:
            pipe = AnyPhotoPipeline.miniworld(folder=config.world_dir or None, with_adapter=False)
        flux, vae = pipe.flux.to(flux_device), pipe.vae
        vae.model.to(device)
    else:
        _check_files(config, ("flux", "vae"))
        flux = load_flux(config.flux, dtype=dtype, device=flux_device)
        vae = load_flux_vae(config.vae, dtype=dtype, device=device)
    text: EncodeText = cache if cache is not None else load_text_encoders_for(config, device, dtype).encode
    recognizer = None
    if need_recognizer:
        if not config.recognizer:
            raise FileNotFoundError(
                "the face loss and data.embedding=reference need model.recognizer (ArcFace ONNX, e.g. "
                "antelopev2/glintr100.onnx); or set loss.face_weight=0, loss.nce_weight=0 and "
                "data.embedding=gallery_mean"
            )
        recognizer = TorchArcFace(config.recognizer).to(device)
    flux.requires_grad_(False).eval()
    if config.shard_flux:
        shard_linears(flux, torch.device(device))
    return FrozenModels(flux, vae, text, recognizer)


def parameter_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype of ``module``'s (first) parameter; also for FSDP2-sharded parameters (``DTensor``)."""
    return next(module.parameters()).dtype
