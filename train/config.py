"""Training configuration: nested dataclasses, read from YAML, overridden by ``key.sub=value`` CLI args.

Every field is documented in ``docs/training.md``. Unknown keys are errors (a typo must not be
silently ignored).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from anyphoto_core.adapter import EMBEDDING_KINDS
from anyphoto_core.app.models.text_encoders import T5_MAX_LENGTH, T5_MIN_LENGTH
from anyphoto_core.tokens import COVERAGE_RULES


class ConfigError(ValueError):
    """A config file or override that does not fit the schema; the message names the key."""


@dataclass
class DataConfig:
    manifest: str = ""
    resolution: int = 512  # square training size in pixels, multiple of 16
    crop_max_ratio: float = 4.0  # square crop side at most this x the faces' span (zoom-out limit)
    crop_size: int = 512  # norm-crop size of the face patches (multiple of 112 or 128)
    replace_max: float = 0.5  # reference-face replacement probability at the end of the curriculum
    replace_milestones: list[int] = field(default_factory=lambda: [10_000, 20_000, 40_000])
    replace_schedule: str = "piecewise"  # "piecewise" (constant steps) or "linear" (interpolated)
    embedding: str = "reference"  # "reference": e_i = ArcFace(pasted face) (paper eq. 15); "gallery_mean"
    id_dropout: float = 0.15  # per identity: canvas tokens and embedding zeroed
    degradations: dict[str, float] = field(default_factory=dict)  # name -> probability (overrides defaults)
    token_rule: str = "majority"
    caption_dropout: float = 0.0
    workers: int = 4  # DataLoader processes building samples ahead of the GPU (0 = in the training process)
    prefetch: int = 2  # samples each worker builds ahead
    allow_missing_captions: bool = False  # true: images without a caption train with "" (else an error)


@dataclass
class ModelConfig:
    kind: str = "flux"  # "flux" (local files), "tiny" (built-in random set) or "miniworld" (docs/miniworld.md)
    flux: str = ""  # flux1-dev.safetensors (black-forest-labs or ComfyUI layout)
    vae: str = ""  # ae.safetensors (FLUX VAE)
    clip_l: str = ""  # clip_l.safetensors (ComfyUI models/text_encoders)
    t5: str = ""  # t5xxl_fp16.safetensors
    tokenizers: str = ""  # diffusers FLUX.1-dev folder (tokenizer/, tokenizer_2/) or a ComfyUI checkout
    tiny_dir: str = ""  # kind tiny: folder of the tiny set (empty = $ANYPHOTO_CACHE/tiny/v1)
    world_dir: str = ""  # kind miniworld: folder of the world models (empty = the shipped set)
    recognizer: str = ""  # ArcFace-contract ONNX (antelopev2 glintr100.onnx), converted with onnx2torch
    text_cache: str = ""  # folder of precomputed caption embeddings (`python -m train encode-text`); "" = encode live
    t5_min_length: int = T5_MIN_LENGTH  # T5 positions: caption tokens padded to at least this (ComfyUI's FLUX: 256)
    t5_max_length: int = T5_MAX_LENGTH  # ... and truncated to at most this (512); the pipeline uses the same two
    rank: int = 16
    alpha: float = 16.0
    projector_hidden: int = 3072
    lora_dropout: float = 0.0
    gradient_checkpointing: bool = True
    guidance: float = 1.0
    modulation: bool = True  # False: ablation "no modulation" (projector frozen at its zero init, delta c = 0)
    isolate: bool = True  # False: ablation "all-visible attention" (identity tokens see each other)
    shard_flux: bool = False  # split the frozen FLUX weights across the processes (FSDP2, train/sharding.py)


@dataclass
class LossConfig:
    face_weight: float = 0.1  # lambda of the face similarity loss (0 disables it)
    face_t_max: float = 1.0  # face loss only where t <= face_t_max (WithAnyone gates at 0.6); 1 = always
    face_decode: str = "crops"  # "crops": decode latent windows around the faces (bounded memory); "full"
    face_crop_margin: int = 8  # latent cells (8 px) added around each face window for the decoder's context
    nce_weight: float = 0.0  # extended-negative InfoNCE (WithAnyone), off by default
    nce_temperature: float = 0.07
    logit_mean: float = 0.0  # logit-normal t: t = sigmoid(N(mean, std))
    logit_std: float = 1.0


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-2
    eps: float = 1e-8
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    accumulation: int = 1


@dataclass
class RunConfig:
    output: str = "runs/anyphoto"
    steps: int = 1000
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 0  # 0 = no sample grids
    sample_steps: int = 20
    log_every: int = 1
    mixed_precision: str = "auto"  # "auto" (bf16 on GPU, no on CPU), "bf16", "no"
    cpu: bool = False


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {where + key!r}; known: {sorted(fields)}")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, f"{where}{key}.")
        else:
            kwargs[key] = _coerce(value, default, where + key)
    return cls(**kwargs)


def _coerce(value, default, key: str):
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, (int, float, str, list, dict)) and not isinstance(value, type(default)):
        raise ConfigError(f"{key} must be a {type(default).__name__}, got {value!r}")
    return value


def parse_overrides(overrides: list[str]) -> dict:
    """``["optim.lr=1e-5", "run.steps=10"]`` -> nested dict (values parsed as YAML scalars)."""
    out: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. optim.lr=1e-5)")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        value = yaml.safe_load(raw)
        if isinstance(value, str):  # YAML reads "1e-5" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        node[leaf] = value
    return out


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Config from a YAML file (optional) plus overrides; validates keys and types."""
    values: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        values = yaml.safe_load(p.read_text()) or {}
    values = _merge(values, parse_overrides(overrides or []))
    config = _build(TrainConfig, values, "")
    validate(config)
    return config


#: (key, test, requirement) for every numeric or choice field; :func:`validate` reports all that fail.
_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("data.resolution", lambda v: v > 0 and v % 16 == 0, "a positive multiple of 16 (FLUX token = 16 px)"),
    ("data.crop_max_ratio", lambda v: v >= 1.0, ">= 1 (the crop must hold the faces)"),
    ("data.crop_size", lambda v: v > 0 and (v % 112 == 0 or v % 128 == 0), "a positive multiple of 112 or 128"),
    ("data.replace_max", lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]"),
    (
        "data.replace_milestones",
        lambda v: bool(v) and sorted(v) == list(v) and min(v) >= 0,
        "a non-empty increasing list of steps >= 0",
    ),
    ("data.replace_schedule", lambda v: v in ("piecewise", "linear"), "'piecewise' or 'linear'"),
    ("data.id_dropout", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
    ("data.embedding", lambda v: v in EMBEDDING_KINDS, f"one of {EMBEDDING_KINDS}"),
    ("data.degradations", lambda v: all(0.0 <= p <= 1.0 for p in v.values()), "probabilities in [0, 1]"),
    ("data.token_rule", lambda v: v in COVERAGE_RULES, f"one of {COVERAGE_RULES}"),
    ("data.caption_dropout", lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]"),
    ("data.workers", lambda v: v >= 0, ">= 0 (0 = build samples in the training process)"),
    ("data.prefetch", lambda v: v >= 1, ">= 1"),
    ("model.kind", lambda v: v in ("flux", "tiny", "miniworld"), "'flux', 'tiny' or 'miniworld'"),
    ("model.rank", lambda v: v >= 1, ">= 1"),
    ("model.alpha", lambda v: v > 0, "> 0"),
    ("model.projector_hidden", lambda v: v >= 1, ">= 1"),
    ("model.lora_dropout", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
    ("model.guidance", lambda v: v >= 0, ">= 0"),
    ("model.t5_min_length", lambda v: v >= 1, ">= 1"),
    ("model.t5_max_length", lambda v: v >= 1, ">= 1 (and >= model.t5_min_length)"),
    ("loss.face_weight", lambda v: v >= 0, ">= 0 (0 disables the face loss; a negative weight would push faces apart)"),
    ("loss.face_t_max", lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
    ("loss.face_decode", lambda v: v in ("crops", "full"), "'crops' (windows around the faces) or 'full'"),
    ("loss.face_crop_margin", lambda v: v >= 0, ">= 0 latent cells"),
    ("loss.nce_weight", lambda v: v >= 0, ">= 0 (0 disables it)"),
    ("loss.nce_temperature", lambda v: v > 0, "> 0"),
    ("loss.logit_std", lambda v: v > 0, "> 0"),
    ("optim.lr", lambda v: v > 0, "> 0 (e.g. 1e-4)"),
    ("optim.betas", lambda v: len(v) == 2 and all(0.0 <= b < 1.0 for b in v), "two numbers in [0, 1)"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.eps", lambda v: v > 0, "> 0"),
    ("optim.warmup_steps", lambda v: v >= 0, ">= 0"),
    ("optim.max_grad_norm", lambda v: v >= 0, ">= 0 (0 = no clipping)"),
    ("optim.accumulation", lambda v: v >= 1, ">= 1"),
    ("run.steps", lambda v: v >= 0, ">= 0"),
    ("run.checkpoint_every", lambda v: v >= 0, ">= 0 (0 = only the final checkpoint)"),
    ("run.keep_checkpoints", lambda v: v >= 1, ">= 1 (0 would delete every checkpoint, the new one included)"),
    ("run.sample_every", lambda v: v >= 0, ">= 0 (0 = no sample grids)"),
    ("run.sample_steps", lambda v: v >= 1, ">= 1"),
    ("run.log_every", lambda v: v >= 1, ">= 1"),
    ("run.mixed_precision", lambda v: v in ("auto", "bf16", "no"), "'auto', 'bf16' or 'no'"),
)


def validate(config: TrainConfig) -> None:
    """Check every value against :data:`_RULES`; one :class:`ConfigError` lists all that fail."""
    problems = []
    for key, ok, requirement in _RULES:
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        try:
            good = ok(value)
        except (TypeError, ValueError):
            good = False
        if not good:
            problems.append(f"{key} must be {requirement}, got {value!r}")
    if config.model.t5_min_length > config.model.t5_max_length:
        problems.append(f"model.t5_min_length ({config.model.t5_min_length}) must be <= model.t5_max_length")
    if config.model.shard_flux and not config.model.gradient_checkpointing:
        problems.append(
            "model.shard_flux=true needs model.gradient_checkpointing=true (the backward pass gathers the sharded "
            "weights through the checkpoint recompute; see docs/training.md 'Scale-out'); set "
            "model.gradient_checkpointing=true or model.shard_flux=false"
        )
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
