"""Frozen models of training: FLUX transformer, VAE, text encoders (with an optional disk cache) and the
differentiable ArcFace.

All weights load through the standalone pipeline's loaders (:class:`anyphoto_core.app.pipeline.AnyPhotoPipeline`:
``load_flux``, ``load_flux_vae`` = diffusers ``AutoencoderKL`` with FLUX shift/scale, transformers CLIP-L
and T5 from single safetensors files, local tokenizers). ``model.kind: tiny`` uses the core's built-in
tiny random-weight set (``anyphoto_core.app.models.tiny``). What is trainer-specific lives here: the
per-caption text-embedding cache and a VAE decode that keeps the graph (the face loss differentiates
through it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from anyphoto_core.app.models import ModelFiles
from anyphoto_core.app.models.vae import FluxVAE
from anyphoto_core.app.pipeline import AnyPhotoPipeline
from anyphoto_core.faces import TorchArcFace
from anyphoto_core.flux import Flux

from .config import ModelConfig

#: caption -> ``txt`` (1, L, context_dim) and pooled ``y`` (1, vec_dim), float32 (``TextEncoders.encode``).
EncodeText = Callable[[str], tuple[Tensor, Tensor]]


def decode_with_grad(vae: FluxVAE, latents: Tensor) -> Tensor:
    """Model-space latents ``(N, 16, h, w)`` -> images ``(N, 3, 8h, 8w)`` in about [-1, 1], differentiable
    with respect to ``latents`` (``FluxVAE.decode`` runs under ``no_grad`` and clamps)."""
    z = latents / vae.scale + vae.shift
    return vae.model.decode(z.to(vae.dtype)).sample


class CachedTextEncoder:
    """Disk cache of an encoder's outputs: ``<folder>/<sha256(caption)>.safetensors`` (``txt``, ``y``)."""

    def __init__(self, encode: EncodeText, folder: str | Path):
        self.encode, self.folder = encode, Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, caption: str) -> tuple[Tensor, Tensor]:
        path = self.folder / f"{hashlib.sha256(caption.encode()).hexdigest()}.safetensors"
        if not path.is_file():
            txt, y = self.encode(caption)
            tmp = path.with_suffix(".tmp")
            save_file({"txt": txt.cpu().contiguous(), "y": y.cpu().contiguous()}, str(tmp))
            tmp.replace(path)
        t = load_file(path)
        return t["txt"], t["y"]


@dataclass
class FrozenModels:
    """``flux`` frozen transformer; ``vae`` :class:`FluxVAE`; ``text`` caption -> ``(txt, y)``;
    ``recognizer`` differentiable ArcFace (None when no face loss is trained)."""

    flux: Flux
    vae: FluxVAE
    text: EncodeText
    recognizer: TorchArcFace | None


def build_models(config: ModelConfig, device="cpu", dtype=torch.float32, need_recognizer: bool = True) -> FrozenModels:
    """Load the frozen models (``kind: flux``: local files; ``kind: tiny``: the built-in tiny set), all
    ``requires_grad=False``, on ``device`` in ``dtype`` (tiny: float32)."""
    if config.kind == "tiny":
        pipe = AnyPhotoPipeline.tiny(folder=config.tiny_dir or None)
        pipe.flux.to(device)
        pipe.vae.model.to(device)
    else:
        files = ModelFiles(flux=Path(config.flux), vae=Path(config.vae), clip_l=Path(config.clip_l), t5=Path(config.t5))
        for role in ("flux", "vae", "clip_l", "t5"):
            if not getattr(files, role).is_file():
                raise FileNotFoundError(f"model.{role} file not found: {getattr(files, role)} (set model.{role})")
        roots = [config.tokenizers or None, os.environ.get("COMFYUI_PATH")]
        pipe = AnyPhotoPipeline.from_files(files, roots, device=device, dtype=dtype)
    text: EncodeText = pipe.text_encoders.encode
    if config.text_cache:
        text = CachedTextEncoder(text, config.text_cache)
    recognizer = None
    if need_recognizer:
        if not config.recognizer:
            raise FileNotFoundError(
                "the face loss needs model.recognizer (ArcFace ONNX, e.g. "
                "antelopev2/glintr100.onnx); or set loss.face_weight=0 and loss.nce_weight=0"
            )
        recognizer = TorchArcFace(config.recognizer).to(device)
    pipe.flux.requires_grad_(False).eval()
    return FrozenModels(pipe.flux, pipe.vae, text, recognizer)
