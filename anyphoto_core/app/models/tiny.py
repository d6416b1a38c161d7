"""The built-in tiny model set: random weights in the real layouts, for demos and tests.

Created deterministically (fixed seeds) on first use in ``$ANYPHOTO_CACHE/tiny/v1`` (default
``~/.cache/anyphoto/tiny/v1``) and then loaded through the same loaders as real weights:

* ``flux.safetensors``: :meth:`FluxParams.tiny` (hidden 64, 2 heads, 1 double + 1 single block,
  text width 32, pooled width 16);
* ``vae.safetensors``: ``AutoencoderKL`` with :data:`TINY_VAE_CONFIG` (16 latent channels, 8x);
* ``clip.safetensors`` / ``t5.safetensors``: tiny ``CLIPTextModel`` / ``T5EncoderModel``
  (:data:`TINY_CLIP_CONFIG`, :data:`TINY_T5_CONFIG`), sharing ``tokenizer/``: a character-level
  ``tokenizers`` WordLevel model wrapped in ``PreTrainedTokenizerFast``;
* ``adapter.safetensors``: an AnyPhoto adapter with non-zero projector and LoRA.

The output of these models is noise-like: it proves the plumbing, not the method.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ...adapter import AdapterConfig, AnyPhotoAdapter
from ...flux import Flux, FluxParams
from .vae import small_flux_vae_config

TINY_VERSION = "v1"
TINY_FLUX = FluxParams.tiny(
    hidden_size=64, num_heads=2, depth=1, depth_single_blocks=1, context_in_dim=32, vec_in_dim=16
)
TINY_VAE_CONFIG = small_flux_vae_config([8, 8, 16, 16], 1, 4, sample_size=64)
_CHARS = list(string.ascii_lowercase + string.digits + " .,!?'-")
_SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]
TINY_CLIP_CONFIG = dict(
    vocab_size=len(_SPECIALS) + len(_CHARS),
    hidden_size=16,
    intermediate_size=32,
    projection_dim=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    max_position_embeddings=32,
    hidden_act="quick_gelu",
    bos_token_id=3,
    eos_token_id=1,
    pad_token_id=0,
)
TINY_T5_CONFIG = dict(
    vocab_size=len(_SPECIALS) + len(_CHARS),
    d_model=32,
    d_kv=16,
    d_ff=64,
    num_layers=1,
    num_heads=2,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
    is_encoder_decoder=False,
    use_cache=False,
    tie_word_embeddings=False,
    pad_token_id=0,
    eos_token_id=1,
)
TINY_MAX_LENGTH = 32


def tiny_cache_dir() -> Path:
    """``$ANYPHOTO_CACHE/tiny/<version>`` or ``~/.cache/anyphoto/tiny/<version>``."""
    base = Path(os.environ.get("ANYPHOTO_CACHE", "~/.cache/anyphoto")).expanduser()
    return base / "tiny" / TINY_VERSION


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Seeded re-init: default init plus random norm scales and biases so every path matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale") or (p.ndim == 1 and "norm" in name and name.endswith("weight")):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / max(fan_in, 1) ** 0.5)


def tiny_adapter_config() -> AdapterConfig:
    return AdapterConfig.for_flux(TINY_FLUX, rank=4, alpha=4.0, projector_hidden=32, base_model="anyphoto-tiny")


def _save(tensors: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _build_tokenizer(folder: Path) -> None:
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(_SPECIALS + _CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token="<s>",
        model_max_length=TINY_MAX_LENGTH,
    )
    fast.save_pretrained(str(folder))


def ensure_tiny_models(folder: Path | None = None) -> Path:
    """Create the tiny set in ``folder`` (default :func:`tiny_cache_dir`) unless already there."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    folder = Path(folder) if folder is not None else tiny_cache_dir()
    if (folder / "complete").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    flux = Flux(TINY_FLUX)
    _randomize(flux, 0)
    _save(flux.state_dict(), folder / "flux.safetensors")
    vae = AutoencoderKL(**TINY_VAE_CONFIG)
    _randomize(vae, 1)
    _save(vae.state_dict(), folder / "vae.safetensors")
    clip = CLIPTextModel(CLIPTextConfig(**TINY_CLIP_CONFIG))
    _randomize(clip, 2)
    clip_sd = {k.removeprefix("text_model."): v for k, v in clip.state_dict().items() if not k.endswith("position_ids")}
    _save({f"text_model.{k}": v for k, v in clip_sd.items()}, folder / "clip.safetensors")  # ComfyUI's layout
    t5 = T5EncoderModel(T5Config(**TINY_T5_CONFIG))
    _randomize(t5, 3)
    _save(
        {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"},  # tied to shared
        folder / "t5.safetensors",
    )
    _build_tokenizer(folder / "tokenizer")
    adapter = AnyPhotoAdapter(tiny_adapter_config())
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for key, t in adapter.adapter_state_dict().items():
            if key.endswith("lora_B.weight") or key.startswith("projector.2"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.2)
    adapter.save(folder / "adapter.safetensors")
    (folder / "complete").write_text(TINY_VERSION)
    return folder


def load_tiny_text_encoders(folder: Path | None = None):
    """The tiny CLIP + T5 pair (:class:`~anyphoto_core.app.models.text_encoders.TextEncoders`), created on first use."""
    from .text_encoders import TextEncoders, load_clip_text_model, load_t5_encoder, load_tokenizer

    root = ensure_tiny_models(folder)
    tok = load_tokenizer(root / "tokenizer")
    return TextEncoders(
        load_clip_text_model(root / "clip.safetensors", TINY_CLIP_CONFIG),
        load_t5_encoder(root / "t5.safetensors", TINY_T5_CONFIG),
        tok,
        tok,
        TINY_MAX_LENGTH,
        TINY_MAX_LENGTH,
    )


class TinyRecognizer:
    """Random-weight stand-in for ArcFace (recognizer contract): a fixed seeded projection of the
    28x28 downsampled crop to 512 values. Embeddings are deterministic but carry no identity."""

    provider = "numpy (built-in random recognizer)"
    name = "tiny-random"

    def __init__(self, seed: int = 5):
        self.weight = np.random.default_rng(seed).standard_normal((28 * 28 * 3, 512)).astype(np.float32)

    def embed(self, crop: np.ndarray) -> np.ndarray:
        if crop.shape != (112, 112, 3) or crop.dtype != np.uint8:
            raise ValueError(f"recognizer input must be a (112, 112, 3) uint8 RGB crop, got {crop.shape} {crop.dtype}")
        small = crop.reshape(28, 4, 28, 4, 3).mean(axis=(1, 3)) / 127.5 - 1.0
        return small.reshape(-1).astype(np.float32) @ self.weight
