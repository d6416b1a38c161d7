"""Training configuration: nested dataclasses, read from YAML, overridden by ``key.sub=value`` CLI args.

Every field is documented in ``docs/training.md``. Unknown keys are errors (a typo must not be
silently ignored).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml


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
    id_dropout: float = 0.15  # per identity: canvas tokens and embedding zeroed
    degradations: dict[str, float] = field(default_factory=dict)  # name -> probability (overrides defaults)
    token_rule: str = "majority"
    caption_dropout: float = 0.0


@dataclass
class ModelConfig:
    kind: str = "flux"  # "flux" (local files) or "tiny" (the core's built-in random-weight set, tests/demo)
    flux: str = ""  # flux1-dev.safetensors (black-forest-labs or ComfyUI layout)
    vae: str = ""  # ae.safetensors (FLUX VAE)
    clip_l: str = ""  # clip_l.safetensors (ComfyUI models/text_encoders)
    t5: str = ""  # t5xxl_fp16.safetensors
    tokenizers: str = ""  # diffusers FLUX.1-dev folder (tokenizer/, tokenizer_2/) or a ComfyUI checkout
    tiny_dir: str = ""  # kind tiny: folder of the tiny set (empty = $ANYPHOTO_CACHE/tiny/v1)
    recognizer: str = ""  # ArcFace-contract ONNX (antelopev2 glintr100.onnx), converted with onnx2torch
    text_cache: str = ""  # folder for cached text embeddings (safetensors), empty = no cache
    rank: int = 16
    alpha: float = 16.0
    projector_hidden: int = 3072
    lora_dropout: float = 0.0
    gradient_checkpointing: bool = True
    guidance: float = 1.0


@dataclass
class LossConfig:
    face_weight: float = 0.1  # lambda of the face similarity loss (0 disables it)
    face_t_max: float = 1.0  # face loss only where t <= face_t_max (WithAnyone gates at 0.6); 1 = always
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


def validate(config: TrainConfig) -> None:
    d = config.data
    if d.resolution % 16:
        raise ConfigError(f"data.resolution must be a multiple of 16 (FLUX token = 16 px), got {d.resolution}")
    if d.replace_schedule not in ("piecewise", "linear"):
        raise ConfigError(f"data.replace_schedule must be 'piecewise' or 'linear', got {d.replace_schedule!r}")
    if sorted(d.replace_milestones) != list(d.replace_milestones) or not d.replace_milestones:
        raise ConfigError(f"data.replace_milestones must be a non-empty increasing list, got {d.replace_milestones}")
    if not 0.0 <= d.id_dropout < 1.0:
        raise ConfigError(f"data.id_dropout must be in [0, 1), got {d.id_dropout}")
    if config.model.kind not in ("flux", "tiny"):
        raise ConfigError(f"model.kind must be 'flux' or 'tiny', got {config.model.kind!r}")
    if config.optim.accumulation < 1:
        raise ConfigError("optim.accumulation must be >= 1")
