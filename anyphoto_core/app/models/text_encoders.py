"""CLIP-L and T5-XXL text encoders from single safetensors files (ComfyUI's ``text_encoders`` files).

The files hold transformers-layout weights (``text_model.encoder.layers.*`` for CLIP-L,
``encoder.block.*`` + ``shared.weight`` for T5); they are loaded into ``CLIPTextModel`` /
``T5EncoderModel`` built from the configs below, never from the hub. Tokenizers come from local
folders only (see :func:`find_tokenizer_dirs`): ``HF_HUB_OFFLINE=1`` and ``local_files_only=True``.

FLUX conditioning: ``txt`` = T5 last hidden state ``(1, L, 4096)`` with ``L`` = the prompt's T5 tokens padded to
at least :data:`T5_MIN_LENGTH` (256, ComfyUI's FLUX convention) and truncated to at most :data:`T5_MAX_LENGTH`
(512), ``y`` = CLIP pooled output ``(1, 768)`` (prompt padded to 77 tokens). The trainer uses the same lengths
(``train.config.ModelConfig``), so the pipeline, the trainer and the ComfyUI nodes see the same text positions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ...flux import read_safetensors
from ...state_dicts import assign_state_dict, state_dict_mismatch
from .errors import ModelFileError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CLIP_L_CONFIG = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    projection_dim=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=1,
)
T5_XXL_CONFIG = dict(
    vocab_size=32128,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6,
    dropout_rate=0.0,
    is_encoder_decoder=False,
    use_cache=False,
    tie_word_embeddings=False,
)
CLIP_MAX_LENGTH, T5_MAX_LENGTH = 77, 512
#: T5 positions every prompt is padded to at least: ComfyUI's FLUX T5 tokenizer (``min_length=256`` in
#: comfy/text_encoders/flux.py). The one value the pipeline, the trainer (and its text cache) share.
T5_MIN_LENGTH = 256
CLIP_KEY = "encoder.layers.0.self_attn.q_proj.weight"
T5_KEY = "encoder.block.0.layer.0.SelfAttention.q.weight"
#: Keys some single files carry that the encoder-only models do not use.
_UNUSED = ("embeddings.position_ids", "text_projection.weight", "logit_scale", "lm_head.weight")

#: Where tokenizers are looked for, relative to a search root: (CLIP-L folder, T5 folder).
TOKENIZER_LAYOUTS = (
    ("tokenizer", "tokenizer_2"),  # a diffusers-format FLUX.1 folder
    ("comfy/sd1_tokenizer", "comfy/text_encoders/t5_tokenizer"),  # a ComfyUI checkout
)


@dataclass(frozen=True)
class TokenizerDirs:
    clip: Path
    t5: Path


def _strip(sd: dict[str, Tensor], key: str) -> dict[str, Tensor]:
    """Keys relative to the model root (whatever prefix the file puts before ``key``); {} if ``key`` is absent."""
    hit = next((k for k in sd if k.endswith(key)), None)
    if hit is None:
        return {}
    prefix = hit[: -len(key)]
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix) and k[len(prefix) :] not in _UNUSED}


def _load(model_cls, config, sd: dict[str, Tensor], source: str, what: str, dtype, device):
    with torch.device("meta"):
        model = model_cls(config)
    expected = model.state_dict()
    root = "text_model." if any(k.startswith("text_model.") for k in expected) else ""  # transformers 4 vs 5 CLIP
    sd = {root + k: v for k, v in sd.items()}
    if "shared.weight" in expected:  # T5: embed_tokens is tied to shared
        for a, b in (
            ("shared.weight", "encoder.embed_tokens.weight"),
            ("encoder.embed_tokens.weight", "shared.weight"),
        ):
            if a not in sd and b in sd:
                sd[a] = sd[b]
    mismatch = state_dict_mismatch(model, sd)
    if mismatch:
        raise ModelFileError(
            f"{source} does not fit the {what} text encoder: {mismatch}. Use the matching file "
            "(clip_l.safetensors / t5xxl_fp16.safetensors in ComfyUI's models/text_encoders)."
        )
    assign_state_dict(model, sd, dtype)
    for name, buf in list(model.named_buffers()):  # non-persistent buffers are not in files: rebuild them
        if buf.is_meta:
            if not name.endswith("position_ids"):
                raise ModelFileError(f"{source}: cannot rebuild buffer {name} of the {what} text encoder")
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            owner.register_buffer("position_ids", torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)
    return model.to(device).eval().requires_grad_(False)


def load_clip_text_model(path, config: dict = CLIP_L_CONFIG, dtype=torch.float32, device="cpu"):
    """``CLIPTextModel`` from a single safetensors file (CLIP-L by default)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    source = os.fspath(path)
    sd = _strip(_read(source, "CLIP-L text encoder"), CLIP_KEY)
    if not sd:
        raise ModelFileError(f"{source} is not a CLIP text encoder (no '{CLIP_KEY}'); pick clip_l.safetensors")
    return _load(CLIPTextModel, CLIPTextConfig(**config), sd, source, "CLIP-L", dtype, device)


def load_t5_encoder(path, config: dict = T5_XXL_CONFIG, dtype=torch.float32, device="cpu"):
    """``T5EncoderModel`` from a single safetensors file (T5-XXL by default; fp8 files are upcast)."""
    from transformers import T5Config, T5EncoderModel

    source = os.fspath(path)
    sd = _strip(_read(source, "T5 text encoder"), T5_KEY)
    if not sd:
        raise ModelFileError(f"{source} is not a T5 encoder (no '{T5_KEY}'); pick t5xxl_fp16.safetensors")
    return _load(T5EncoderModel, T5Config(**config), sd, source, "T5-XXL", dtype, device)


def _read(source: str, what: str) -> dict[str, Tensor]:
    try:
        return read_safetensors(source, what)
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None


def find_tokenizer_dirs(roots) -> TokenizerDirs:
    """First ``roots`` entry holding both tokenizer folders in one of :data:`TOKENIZER_LAYOUTS`."""
    tried = []
    for root in roots:
        if root is None:
            continue
        for clip_rel, t5_rel in TOKENIZER_LAYOUTS:
            clip, t5 = Path(root) / clip_rel, Path(root) / t5_rel
            tried.append(str(clip.parent if clip_rel.startswith("comfy") else root))
            if clip.is_dir() and t5.is_dir():
                return TokenizerDirs(clip, t5)
    raise ModelFileError(
        "no local tokenizers found (tokenizers are never downloaded). Either pass --tokenizers DIR pointing at a "
        "diffusers-format FLUX.1-dev folder (with tokenizer/ and tokenizer_2/), or at a ComfyUI checkout (with "
        "comfy/sd1_tokenizer/ and comfy/text_encoders/t5_tokenizer/), or set COMFYUI_PATH. "
        f"Looked in: {sorted(set(tried))}"
    )


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"could not read the tokenizer in {folder} ({exc})") from None


class TextEncoders:
    """Both encoders and tokenizers; :meth:`encode` gives FLUX's ``(txt, y)``; :meth:`free` drops the weights.

    T5 length: a prompt of ``n`` tokens (EOS included) is padded to ``min(max(n, t5_min_length), t5_max_length)``
    (defaults :data:`T5_MIN_LENGTH` = 256, ComfyUI's FLUX convention, and :data:`T5_MAX_LENGTH` = 512), never
    to a fixed 512 (diffusers' convention) that the adapter was not trained with.
    """

    def __init__(
        self,
        clip,
        t5,
        clip_tokenizer,
        t5_tokenizer,
        clip_max_length: int = CLIP_MAX_LENGTH,
        t5_max_length: int = T5_MAX_LENGTH,
        t5_min_length: int = T5_MIN_LENGTH,
    ):
        self.clip, self.t5 = clip, t5
        self.clip_tokenizer, self.t5_tokenizer = clip_tokenizer, t5_tokenizer
        self.clip_max_length, self.t5_max_length = clip_max_length, t5_max_length
        self.t5_min_length = t5_min_length

    def t5_length(self, prompt: str) -> int:
        """Number of T5 positions :meth:`encode` gives ``prompt`` (see the class doc)."""
        n = len(self.t5_tokenizer(prompt, max_length=self.t5_max_length, truncation=True).input_ids)
        return min(max(n, self.t5_min_length), self.t5_max_length)

    @torch.no_grad()
    def encode(self, prompt: str) -> tuple[Tensor, Tensor]:
        """``prompt`` -> ``txt`` ``(1, L, d_model)`` (``L`` = :meth:`t5_length`) and ``y`` ``(1, clip_hidden)``,
        float32 CPU."""
        if self.clip is None:
            raise RuntimeError("text encoders were freed; load them again")
        t5_ids = self.t5_tokenizer(
            [prompt], padding="max_length", max_length=self.t5_length(prompt), truncation=True, return_tensors="pt"
        ).input_ids
        clip_ids = self.clip_tokenizer(
            [prompt], padding="max_length", max_length=self.clip_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        txt = self.t5(input_ids=t5_ids.to(self.t5.device)).last_hidden_state
        y = self.clip(input_ids=clip_ids.to(self.clip.device)).pooler_output
        return txt.float().cpu(), y.float().cpu()

    def free(self) -> None:
        """Drop the encoder weights and return their memory (CUDA cache included)."""
        import gc

        self.clip = self.t5 = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def load_text_encoders(clip_l, t5, tokenizer_roots, dtype=torch.float32, device="cpu") -> TextEncoders:
    """CLIP-L and T5-XXL from their single files plus the local tokenizers (:func:`find_tokenizer_dirs`)."""
    dirs = find_tokenizer_dirs(tokenizer_roots)
    return TextEncoders(
        load_clip_text_model(clip_l, dtype=dtype, device=device),
        load_t5_encoder(t5, dtype=dtype, device=device),
        load_tokenizer(dirs.clip),
        load_tokenizer(dirs.t5),
    )
