"""The AnyPhoto adapter: identity projector + identity-only LoRA, and its safetensors file.

* Projector (paper eq. 16, appendix 0.A.1): ``Linear(512, P) -> GELU -> Linear(P, hidden)`` maps
  an identity embedding to the modulation offset ``delta_c`` (same size as FLUX's ``vec``).
  Its last layer starts at zero, so a fresh adapter adds no offset.
* LoRA A/B pairs on the image-path linears (double blocks: ``img_attn.qkv``, ``img_attn.proj``,
  ``img_mlp.0``, ``img_mlp.2``; single blocks: ``linear1``, ``linear2``). They are peft LoRA layers
  (``peft.LoraConfig`` + ``inject_adapter_in_model``: peft's config, init and scaling) hosted on a
  weightless *shadow* of those linears (their stand-in weights are deleted after injection),
  because they must only ever touch identity tokens: the block forwards call the host model's own
  linear for every token and add :meth:`AnyPhotoAdapter.lora_delta` on identity rows.

File format (safetensors; metadata strings): ``format = "anyphoto-adapter"``,
``format_version`` (2), shape fields ``hidden_size``, ``mlp_hidden_dim``, ``depth``,
``depth_single_blocks``, ``rank``, ``alpha``, ``embedding_dim``, ``projector_hidden``,
``double_targets``/``single_targets`` (JSON lists), ``base_model``, and the *recipe* that
inference must match with training, read by every host from the adapter and nowhere else:
``type_index`` (RoPE axis 0 of identity tokens), ``token_rule`` (coverage rule, see
:mod:`anyphoto_core.tokens`), ``embedding_kind`` (``"reference"`` or ``"gallery_mean"``) and
``recognizer`` (name of the face recognizer whose embeddings the projector was trained on).
Version-1 files (no ``token_rule``/``recognizer``) load as ``majority`` / ``gallery_mean`` /
``antelopev2``, the values inference used for them. Tensor keys: ``projector.{0,2}.{weight,bias}``
and ``lora.<module path>.lora_{A,B}.weight``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .blocks import LoraDeltaFn
from .tokens import COVERAGE_RULES

FORMAT_NAME = "anyphoto-adapter"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DOUBLE_TARGETS = ("img_attn.qkv", "img_attn.proj", "img_mlp.0", "img_mlp.2")
SINGLE_TARGETS = ("linear1", "linear2")
#: Embedding kinds (what the projector was trained on; every embedding is L2-normalized, see
#: docs/faces.md): ``"reference"`` = the embedding of the reference face pasted on the canvas
#: (paper eq. 15); ``"gallery_mean"`` = the normalized mean over the person's photos.
EMBEDDING_KINDS = ("reference", "gallery_mean")
DEFAULT_EMBEDDING_KIND = "gallery_mean"
#: Recognizer of the embeddings (the insightface model pack name for ArcFace antelopev2).
DEFAULT_RECOGNIZER = "antelopev2"
#: Format version 1 (no ``token_rule``/``recognizer``; ``embedding_kind`` was this one string)
#: loads with the values inference used then: majority rule, gallery mean, antelopev2.
_V1_EMBEDDING_KIND = "arcface-antelopev2-l2norm-mean"
_ADAPTER_NAME = "default"


def default_file_mode() -> int:
    """Mode a plain ``open(path, "w")`` would give under the current umask (0644 under umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class AdapterError(ValueError):
    """An adapter file or config that does not fit; the message names the mismatch."""


@dataclass(frozen=True)
class AdapterConfig:
    """Shape and recipe of an adapter. Defaults are ours where the paper's numbers were lost."""

    hidden_size: int = 3072
    mlp_hidden_dim: int = 12288
    depth: int = 19
    depth_single_blocks: int = 38
    rank: int = 16
    alpha: float = 16.0
    embedding_dim: int = 512
    projector_hidden: int = 3072
    type_index: float = 1.0
    token_rule: str = "majority"
    embedding_kind: str = DEFAULT_EMBEDDING_KIND
    recognizer: str = DEFAULT_RECOGNIZER
    base_model: str = "flux.1-dev"
    double_targets: tuple[str, ...] = field(default=DOUBLE_TARGETS)
    single_targets: tuple[str, ...] = field(default=SINGLE_TARGETS)

    def __post_init__(self):
        if self.token_rule not in COVERAGE_RULES:
            raise AdapterError(f"token_rule must be one of {COVERAGE_RULES}, got {self.token_rule!r}")
        if self.embedding_kind not in EMBEDDING_KINDS:
            raise AdapterError(f"embedding_kind must be one of {EMBEDDING_KINDS}, got {self.embedding_kind!r}")

    @classmethod
    def for_flux(cls, params, **recipe) -> AdapterConfig:
        """The config whose LoRA targets fit a FLUX transformer of ``params`` (a
        :class:`~anyphoto_core.flux.FluxParams`: hidden size, MLP width, double and single block counts);
        ``recipe`` sets the other fields (rank, alpha, token rule, ...)."""
        return cls(
            hidden_size=params.hidden_size,
            mlp_hidden_dim=params.mlp_hidden_dim,
            depth=params.depth,
            depth_single_blocks=params.depth_single_blocks,
            **recipe,
        )

    def target_shapes(self) -> dict[str, tuple[int, int]]:
        """``{"double_blocks.0.img_attn.qkv": (in, out), ...}`` for every LoRA target."""
        h, mlp = self.hidden_size, self.mlp_hidden_dim
        double = {"img_attn.qkv": (h, 3 * h), "img_attn.proj": (h, h), "img_mlp.0": (h, mlp), "img_mlp.2": (mlp, h)}
        single = {"linear1": (h, 3 * h + mlp), "linear2": (h + mlp, h)}
        shapes = {}
        for i in range(self.depth):
            for t in self.double_targets:
                shapes[f"double_blocks.{i}.{t}"] = double[t]
        for i in range(self.depth_single_blocks):
            for t in self.single_targets:
                shapes[f"single_blocks.{i}.{t}"] = single[t]
        return shapes

    def to_metadata(self) -> dict[str, str]:
        meta = {name: _METADATA_TYPES[name][1](getattr(self, name)) for name in _METADATA_TYPES}
        meta.update(format=FORMAT_NAME, format_version=str(FORMAT_VERSION))
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str) -> AdapterConfig:
        """Parse file metadata, each field by its declared parser (:data:`_METADATA_TYPES`)."""
        if meta.get("format") != FORMAT_NAME:
            raise AdapterError(f"{source} is not an AnyPhoto adapter (metadata format={meta.get('format')!r})")
        version = meta.get("format_version", "")
        version = int(version) if version.isdigit() else -1
        if version not in READABLE_VERSIONS:
            raise AdapterError(
                f"{source} has adapter format version {meta.get('format_version')}; this AnyPhoto reads "
                f"versions {READABLE_VERSIONS}. Update AnyPhoto or re-export the adapter."
            )
        if version == 1:
            meta = _upgrade_v1(meta)
        kwargs = {}
        for name, (parse, _) in _METADATA_TYPES.items():
            if name not in meta:
                raise AdapterError(f"{source} metadata lacks {name!r}")
            try:
                kwargs[name] = parse(meta[name])
            except ValueError as exc:
                raise AdapterError(f"{source} metadata {name}={meta[name]!r} {exc}") from None
        try:
            return cls(**kwargs)
        except AdapterError as exc:
            raise AdapterError(f"{source}: {exc}") from None


def _parse_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("is not an integer") from None


def _parse_finite(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError("is not a finite number")
    return value


def _parse_tuple(raw: str) -> tuple[str, ...]:
    try:
        values = json.loads(raw)
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("is not a JSON list of module names")
    return tuple(values)


def _upgrade_v1(meta: dict[str, str]) -> dict[str, str]:
    """Version-1 metadata with the recipe values inference used for those files."""
    out = dict(meta)
    out.setdefault("token_rule", "majority")
    out.setdefault("recognizer", DEFAULT_RECOGNIZER)
    if out.get("embedding_kind") == _V1_EMBEDDING_KIND:
        out["embedding_kind"] = "gallery_mean"
    return out


#: Metadata field -> (parse from string, format to string). Every AdapterConfig field is here.
_METADATA_TYPES: dict[str, tuple[Callable[[str], object], Callable[[object], str]]] = {
    "hidden_size": (_parse_int, str),
    "mlp_hidden_dim": (_parse_int, str),
    "depth": (_parse_int, str),
    "depth_single_blocks": (_parse_int, str),
    "rank": (_parse_int, str),
    "alpha": (_parse_finite, str),
    "embedding_dim": (_parse_int, str),
    "projector_hidden": (_parse_int, str),
    "type_index": (_parse_finite, str),
    "token_rule": (str, str),
    "embedding_kind": (str, str),
    "recognizer": (str, str),
    "base_model": (str, str),
    "double_targets": (_parse_tuple, lambda v: json.dumps(list(v))),
    "single_targets": (_parse_tuple, lambda v: json.dumps(list(v))),
}


class _ShadowLinears(nn.Module):
    """Weightless stand-ins for the host's target linears, named like the host's modules.

    peft needs a linear to host each LoRA pair; the host's real linear is never called through
    it. After injection the stand-ins' weights are removed (:func:`_drop_shadow_weights`), so
    every parameter of the adapter is a real LoRA/projector weight: ``.to()``, ``.half()`` and DDP
    work on the adapter directly."""

    def __init__(self, shapes: dict[str, tuple[int, int]]):
        super().__init__()
        with torch.device("meta"):
            for path, (fan_in, fan_out) in shapes.items():
                parent = self
                *parents, leaf = path.split(".")
                for name in parents:
                    if not hasattr(parent, name):
                        parent.add_module(name, nn.Module())
                    parent = getattr(parent, name)
                parent.add_module(leaf, nn.Linear(fan_in, fan_out, bias=False))


def _drop_shadow_weights(layer: LoraLayer) -> None:
    """Materialize a peft layer's LoRA pair on the CPU (peft's init) and delete its stand-in weight."""
    layer.lora_A.to_empty(device="cpu")
    layer.lora_B.to_empty(device="cpu")
    layer.reset_lora_parameters(_ADAPTER_NAME, init_lora_weights=True)
    layer.get_base_layer().register_parameter("weight", None)


class AnyPhotoAdapter(nn.Module):
    """Learned AnyPhoto weights. ``projector``: embeddings ``(..., 512)`` -> ``(..., hidden)``;
    ``lora_delta(path, x)``: the LoRA term of the target linear at ``path`` for identity rows."""

    def __init__(self, config: AdapterConfig = AdapterConfig(), lora_dropout: float = 0.0):
        super().__init__()
        self.config = config
        self.projector = nn.Sequential(
            nn.Linear(config.embedding_dim, config.projector_hidden),
            nn.GELU(),
            nn.Linear(config.projector_hidden, config.hidden_size),
        )
        nn.init.zeros_(self.projector[2].weight)
        nn.init.zeros_(self.projector[2].bias)
        shadow = _ShadowLinears(config.target_shapes())
        lora_config = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=lora_dropout,
            target_modules=list(config.target_shapes()),
        )
        self.lora = inject_adapter_in_model(lora_config, shadow, adapter_name=_ADAPTER_NAME)
        self._layers: dict[str, LoraLayer] = {}
        for path, module in self.lora.named_modules():
            if isinstance(module, LoraLayer):
                _drop_shadow_weights(module)
                self._layers[path] = module

    @property
    def target_paths(self) -> list[str]:
        return list(self._layers)

    def modulation_offsets(self, embeddings: Tensor) -> Tensor:
        """``delta_c = MLP(embedding)``: ``(..., embedding_dim)`` -> ``(..., hidden_size)``."""
        if embeddings.shape[-1] != self.config.embedding_dim:
            raise AdapterError(
                f"identity embeddings have {embeddings.shape[-1]} values; this adapter expects "
                f"{self.config.embedding_dim} ({self.config.embedding_kind})"
            )
        weight = self.projector[0].weight
        return self.projector(embeddings.to(device=weight.device, dtype=weight.dtype))

    def lora_delta(self, path: str, x: Tensor) -> Tensor | None:
        """LoRA output ``B(A(dropout(x))) * alpha / rank`` for the target at ``path``, or None.

        Computed on the LoRA weights' device and dtype (the adapter may sit elsewhere under
        offloading) and returned on ``x``'s device and dtype."""
        layer = self._layers.get(path)
        if layer is None:
            return None
        lora_a, lora_b = layer.lora_A[_ADAPTER_NAME], layer.lora_B[_ADAPTER_NAME]
        h = layer.lora_dropout[_ADAPTER_NAME](x.to(device=lora_a.weight.device, dtype=lora_a.weight.dtype))
        return (lora_b(lora_a(h)) * layer.scaling[_ADAPTER_NAME]).to(device=x.device, dtype=x.dtype)

    def lora_function(self, strength: float = 1.0) -> LoraDeltaFn | None:
        """The LoRA function of a forward at ``strength``: ``strength * lora_delta`` (None at 0)."""
        if strength == 0.0:
            return None
        if strength == 1.0:
            return self.lora_delta

        def scaled(path: str, x: Tensor) -> Tensor | None:
            out = self.lora_delta(path, x)
            return None if out is None else out * strength

        return scaled

    def adapter_state_dict(self) -> dict[str, Tensor]:
        """Tensors as stored in the file (see module docstring for the key layout)."""
        out = {f"projector.{k}": v for k, v in self.projector.state_dict().items()}
        for path, layer in self._layers.items():
            out[f"lora.{path}.lora_A.weight"] = layer.lora_A[_ADAPTER_NAME].weight
            out[f"lora.{path}.lora_B.weight"] = layer.lora_B[_ADAPTER_NAME].weight
        return out

    def save(self, path: str | os.PathLike, extra_metadata: dict[str, str] | None = None) -> None:
        """Write the adapter as safetensors with metadata (atomically: temp file, then rename)."""
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.adapter_state_dict().items()}
        meta = self.config.to_metadata()
        meta.update(extra_metadata or {})
        tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
        save_file(tensors, tmp, metadata=meta)
        os.chmod(tmp, default_file_mode())  # safetensors creates files 0600; a shared adapter must be readable
        os.replace(tmp, path)

    def load_tensors(self, tensors: dict[str, Tensor], source: str) -> None:
        expected = self.adapter_state_dict()
        missing = sorted(set(expected) - set(tensors))
        if missing:
            raise AdapterError(f"{source} lacks {len(missing)} tensors, e.g. {missing[:3]}")
        for key, ref in expected.items():
            if tuple(tensors[key].shape) != tuple(ref.shape):
                raise AdapterError(
                    f"{source}: tensor {key} has shape {tuple(tensors[key].shape)}, "
                    f"expected {tuple(ref.shape)} for rank {self.config.rank}, hidden {self.config.hidden_size}"
                )
            if not torch.isfinite(tensors[key]).all():
                raise AdapterError(
                    f"{source}: tensor {key} contains NaN or infinite values; the adapter file is broken "
                    "(a diverged training run or a corrupt copy); use an earlier checkpoint or copy the file again"
                )
        with torch.no_grad():
            for key, ref in expected.items():
                ref.copy_(tensors[key])


def read_adapter_config(path: str | os.PathLike) -> AdapterConfig:
    """Read and validate only the metadata of an adapter file."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise AdapterError(f"adapter file not found: {source}")
    try:
        with safe_open(source, framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterError(
            f"{source} is not a readable safetensors file ({exc}); adapters must be .safetensors"
        ) from None
    return AdapterConfig.from_metadata(meta, source)


def load_adapter(
    path: str | os.PathLike,
    hidden_size: int | None = None,
    depth: int | None = None,
    depth_single_blocks: int | None = None,
) -> AnyPhotoAdapter:
    """Load an adapter file, checking it fits a model of the given sizes (when given)."""
    source = os.fspath(path)
    config = read_adapter_config(source)
    for name, want in (("hidden_size", hidden_size), ("depth", depth), ("depth_single_blocks", depth_single_blocks)):
        have = getattr(config, name)
        if want is not None and have != want:
            raise AdapterError(
                f"{source} was trained for a model with {name}={have}, but the loaded model has "
                f"{name}={want}; use an adapter made for this model (FLUX.1-dev: hidden 3072, 19 double, 38 single)"
            )
    adapter = AnyPhotoAdapter(config)
    with safe_open(source, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    adapter.load_tensors(tensors, source)
    return adapter
