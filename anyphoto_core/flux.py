"""A compact FLUX.1 transformer in the black-forest-labs / ComfyUI module layout.

Same parameter names as ``flux1-dev.safetensors`` (``img_in``, ``time_in``, ``vector_in``,
``guidance_in``, ``txt_in``, ``double_blocks.{i}.img_attn.qkv``, ``single_blocks.{i}.linear1``,
``final_layer``...), so real weights load as they are (bare keys or ComfyUI's
``model.diffusion_model.`` prefix). Sizes are configurable: :meth:`FluxParams.flux1_dev` for the
real model, :meth:`FluxParams.tiny` for tests and the built-in demo.

:meth:`Flux.forward` is stock FLUX; :meth:`Flux.forward_anyphoto` appends identity tokens and
runs the AnyPhoto block forwards from :mod:`anyphoto_core.blocks` (the same code the ComfyUI
nodes run on ComfyUI's own FLUX).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field

import torch
import torch.utils.checkpoint
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from .attention import AttentionFn, sdpa_attention
from .blocks import apply_rope, double_block_forward, single_block_forward
from .identity import IdentityInputs
from .state_dicts import assign_state_dict, state_dict_mismatch

COMFY_PREFIXES = ("model.diffusion_model.", "diffusion_model.")
_DETECT_KEY = "double_blocks.0.img_attn.norm.key_norm.scale"


class FluxLoadError(ValueError):
    """A file that is not a FLUX.1 transformer; the message says what was found."""


@dataclass(frozen=True)
class FluxParams:
    """FLUX.1 hyper-parameters (names as in black-forest-labs/flux)."""

    in_channels: int = 64
    out_channels: int = 64
    vec_in_dim: int = 768
    context_in_dim: int = 4096
    hidden_size: int = 3072
    mlp_ratio: float = 4.0
    num_heads: int = 24
    depth: int = 19
    depth_single_blocks: int = 38
    axes_dim: tuple[int, ...] = field(default=(16, 56, 56))
    theta: int = 10_000
    qkv_bias: bool = True
    guidance_embed: bool = True

    @classmethod
    def flux1_dev(cls) -> FluxParams:
        return cls()

    @classmethod
    def tiny(
        cls,
        hidden_size: int = 64,
        num_heads: int = 2,
        depth: int = 2,
        depth_single_blocks: int = 2,
        context_in_dim: int = 32,
        vec_in_dim: int = 16,
    ) -> FluxParams:
        return cls(
            vec_in_dim=vec_in_dim,
            context_in_dim=context_in_dim,
            hidden_size=hidden_size,
            num_heads=num_heads,
            depth=depth,
            depth_single_blocks=depth_single_blocks,
            axes_dim=axes_dim_for(hidden_size // num_heads),
        )

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)


def axes_dim_for(head_dim: int) -> tuple[int, int, int]:
    """RoPE split of a head as FLUX.1 does at 128 -> (16, 56, 56): 1/8 for axis 0, rest halved."""
    first = head_dim // 8
    rest = (head_dim - first) // 2
    if first % 2 or rest % 2 or first + 2 * rest != head_dim:
        raise ValueError(f"head dim {head_dim} cannot be split into even RoPE axes; use a multiple of 32")
    return (first, rest, rest)


def rope(pos: Tensor, dim: int, theta: int) -> Tensor:
    """``(..., N)`` positions -> ``(..., N, dim/2, 2, 2)`` float32 rotation matrices."""
    scale = torch.arange(0, dim, 2, dtype=torch.float64, device=pos.device) / dim
    omega = 1.0 / (theta**scale)
    out = pos.to(torch.float64)[..., None] * omega
    out = torch.stack([torch.cos(out), -torch.sin(out), torch.sin(out), torch.cos(out)], dim=-1)
    return out.reshape(*out.shape[:-1], 2, 2).float()


class EmbedND(nn.Module):
    def __init__(self, theta: int, axes_dim: tuple[int, ...]):
        super().__init__()
        self.theta, self.axes_dim = theta, axes_dim

    def forward(self, ids: Tensor) -> Tensor:
        """``(B, N, 3)`` ids -> ``(B, 1, N, head_dim/2, 2, 2)``."""
        emb = torch.cat([rope(ids[..., i], d, self.theta) for i, d in enumerate(self.axes_dim)], dim=-3)
        return emb.unsqueeze(1)


def timestep_embedding(t: Tensor, dim: int, max_period: int = 10_000, time_factor: float = 1000.0) -> Tensor:
    """Sinusoidal embedding of ``t`` ``(B,)`` in [0, 1] -> ``(B, dim)``."""
    t = time_factor * t
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, hidden_dim: int):
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden_dim)
        self.silu = nn.SiLU()
        self.out_layer = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(self.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x_dtype = x.dtype
        x = x.float()
        rrms = torch.rsqrt(torch.mean(x**2, dim=-1, keepdim=True) + 1e-6)
        return (x * rrms).to(dtype=x_dtype) * self.scale


class QKNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.query_norm = RMSNorm(dim)
        self.key_norm = RMSNorm(dim)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return self.query_norm(q).to(v), self.key_norm(k).to(v)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm = QKNorm(dim // num_heads)
        self.proj = nn.Linear(dim, dim)


@dataclass
class ModulationOut:
    shift: Tensor
    scale: Tensor
    gate: Tensor


class Modulation(nn.Module):
    """``vec`` ``(B, C)`` or ``(B, K, C)`` -> shift/scale/gate ``(B, 1 or K, C)`` (x2 if double)."""

    def __init__(self, dim: int, double: bool):
        super().__init__()
        self.is_double = double
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim)

    def forward(self, vec: Tensor) -> tuple[ModulationOut, ModulationOut | None]:
        if vec.ndim == 2:
            vec = vec[:, None, :]
        out = self.lin(nn.functional.silu(vec)).chunk(self.multiplier, dim=-1)
        return ModulationOut(*out[:3]), ModulationOut(*out[3:]) if self.is_double else None


class DoubleStreamBlock(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        mlp_hidden = int(hidden_size * mlp_ratio)
        self.num_heads, self.hidden_size = num_heads, hidden_size
        for stream in ("img", "txt"):
            setattr(self, f"{stream}_mod", Modulation(hidden_size, double=True))
            setattr(self, f"{stream}_norm1", nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6))
            setattr(self, f"{stream}_attn", SelfAttention(hidden_size, num_heads, qkv_bias))
            setattr(self, f"{stream}_norm2", nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6))
            setattr(
                self,
                f"{stream}_mlp",
                nn.Sequential(
                    nn.Linear(hidden_size, mlp_hidden), nn.GELU(approximate="tanh"), nn.Linear(mlp_hidden, hidden_size)
                ),
            )

    def forward(
        self, img: Tensor, txt: Tensor, vec: Tensor, pe: Tensor, attn_fn: AttentionFn = sdpa_attention
    ) -> tuple[Tensor, Tensor]:
        """Stock FLUX double block: ``img`` ``(B, Ni, C)``, ``txt`` ``(B, Nt, C)``, ``vec`` ``(B, C)``."""
        img_mod1, img_mod2 = self.img_mod(vec)
        txt_mod1, txt_mod2 = self.txt_mod(vec)
        img_q, img_k, img_v = self._qkv(
            self.img_attn, torch.addcmul(img_mod1.shift, self.img_norm1(img), 1 + img_mod1.scale)
        )
        txt_q, txt_k, txt_v = self._qkv(
            self.txt_attn, torch.addcmul(txt_mod1.shift, self.txt_norm1(txt), 1 + txt_mod1.scale)
        )
        q = apply_rope(torch.cat((txt_q, img_q), dim=2), pe)
        k = apply_rope(torch.cat((txt_k, img_k), dim=2), pe)
        attn = attn_fn(q, k, torch.cat((txt_v, img_v), dim=2), None)
        txt_attn, img_attn = attn[:, : txt.shape[1]], attn[:, txt.shape[1] :]
        img = img + img_mod1.gate * self.img_attn.proj(img_attn)
        img = img + img_mod2.gate * self.img_mlp(torch.addcmul(img_mod2.shift, self.img_norm2(img), 1 + img_mod2.scale))
        txt = txt + txt_mod1.gate * self.txt_attn.proj(txt_attn)
        txt = txt + txt_mod2.gate * self.txt_mlp(torch.addcmul(txt_mod2.shift, self.txt_norm2(txt), 1 + txt_mod2.scale))
        return img, txt

    def _qkv(self, attn: SelfAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, n, _ = x.shape
        q, k, v = attn.qkv(x).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = attn.norm(q, k, v)
        return q, k, v


class SingleStreamBlock(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.hidden_dim = self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.mlp_hidden_dim = int(hidden_size * mlp_ratio)
        self.linear1 = nn.Linear(hidden_size, hidden_size * 3 + self.mlp_hidden_dim)
        self.linear2 = nn.Linear(hidden_size + self.mlp_hidden_dim, hidden_size)
        self.norm = QKNorm(hidden_size // num_heads)
        self.pre_norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.modulation = Modulation(hidden_size, double=False)

    def forward(self, x: Tensor, vec: Tensor, pe: Tensor, attn_fn: AttentionFn = sdpa_attention) -> Tensor:
        """Stock FLUX single block over ``x = [txt | img]`` ``(B, N, C)``."""
        mod, _ = self.modulation(vec)
        x_mod = torch.addcmul(mod.shift, self.pre_norm(x), 1 + mod.scale)
        qkv, mlp = torch.split(self.linear1(x_mod), [3 * self.hidden_size, self.mlp_hidden_dim], dim=-1)
        b, n, _ = qkv.shape
        q, k, v = qkv.view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = self.norm(q, k, v)
        attn = attn_fn(apply_rope(q, pe), apply_rope(k, pe), v, None)
        return x + mod.gate * self.linear2(torch.cat((attn, self.mlp_act(mlp)), 2))


class LastLayer(nn.Module):
    def __init__(self, hidden_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)
        x = (1 + scale[:, None, :]) * self.norm_final(x) + shift[:, None, :]
        return self.linear(x)


class Flux(nn.Module):
    """FLUX.1 transformer (black-forest-labs layout)."""

    def __init__(self, params: FluxParams):
        super().__init__()
        if params.hidden_size % params.num_heads:
            raise ValueError(f"hidden size {params.hidden_size} is not divisible by {params.num_heads} heads")
        if sum(params.axes_dim) != params.hidden_size // params.num_heads:
            raise ValueError(
                f"axes_dim {params.axes_dim} must sum to the head dim {params.hidden_size // params.num_heads}"
            )
        self.params = params
        self.hidden_size, self.num_heads = params.hidden_size, params.num_heads
        self.pe_embedder = EmbedND(params.theta, params.axes_dim)
        self.img_in = nn.Linear(params.in_channels, params.hidden_size)
        self.time_in = MLPEmbedder(256, params.hidden_size)
        self.vector_in = MLPEmbedder(params.vec_in_dim, params.hidden_size)
        self.guidance_in = MLPEmbedder(256, params.hidden_size) if params.guidance_embed else nn.Identity()
        self.txt_in = nn.Linear(params.context_in_dim, params.hidden_size)
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(params.hidden_size, params.num_heads, params.mlp_ratio, params.qkv_bias)
            for _ in range(params.depth)
        )
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(params.hidden_size, params.num_heads, params.mlp_ratio)
            for _ in range(params.depth_single_blocks)
        )
        self.final_layer = LastLayer(params.hidden_size, params.out_channels)

    def conditioning_vector(self, timesteps: Tensor, y: Tensor, guidance: Tensor | None) -> Tensor:
        """``vec`` ``(B, hidden)`` from timestep (in [0, 1]), pooled text ``y`` and guidance."""
        vec = self.time_in(timestep_embedding(timesteps, 256).to(self.img_in.weight.dtype))
        if self.params.guidance_embed:
            if guidance is None:
                raise ValueError("this FLUX model is guidance-distilled (FLUX.1-dev): pass a guidance value")
            vec = vec + self.guidance_in(timestep_embedding(guidance, 256).to(vec.dtype))
        return vec + self.vector_in(y.to(vec.dtype))

    def forward(
        self,
        img: Tensor,
        img_ids: Tensor,
        txt: Tensor,
        txt_ids: Tensor,
        timesteps: Tensor,
        y: Tensor,
        guidance: Tensor | None = None,
        attn_fn: AttentionFn = sdpa_attention,
    ) -> Tensor:
        """Stock FLUX: ``img`` ``(B, Ni, 64)`` packed latents, ``txt`` ``(B, Nt, ctx)`` -> ``(B, Ni, 64)``."""
        return self.forward_anyphoto(img, img_ids, txt, txt_ids, timesteps, y, guidance, None, attn_fn=attn_fn)

    def forward_anyphoto(
        self,
        img: Tensor,
        img_ids: Tensor,
        txt: Tensor,
        txt_ids: Tensor,
        timesteps: Tensor,
        y: Tensor,
        guidance: Tensor | None,
        identities: IdentityInputs | None,
        attn_fn: AttentionFn = sdpa_attention,
        isolate: bool = True,
        global_sees_identities: Tensor | None = None,
        checkpoint_blocks: bool = False,
    ) -> Tensor:
        """AnyPhoto forward over ``[txt | img | id_1..id_N]``; only image tokens are returned.

        With ``identities`` None (or no tokens) this is exactly the stock forward.
        ``checkpoint_blocks`` recomputes each block in the backward pass (gradient checkpointing,
        for training): same outputs and gradients, activation memory of one block.
        """
        run = _checkpointed if checkpoint_blocks and torch.is_grad_enabled() else _direct
        n_img = img.shape[1]
        vec = self.conditioning_vector(timesteps, y, guidance)
        img = self.img_in(img)
        txt = self.txt_in(txt)
        ctx = None
        if identities is not None and identities.total > 0:
            img, img_ids = identities.append_to_image(img, img_ids, self.img_in)
            ctx = identities.context(vec, attn_fn, isolate, global_sees_identities)
        pe = self.pe_embedder(torch.cat((txt_ids.float(), img_ids.float()), dim=1))
        for i, block in enumerate(self.double_blocks):
            if ctx is None:
                img, txt = run(block, img, txt, vec, pe, attn_fn=attn_fn)
            else:
                img, txt = run(double_block_forward, block, img, txt, vec, pe, ctx, f"double_blocks.{i}")
        x = torch.cat((txt, img), dim=1)
        for i, block in enumerate(self.single_blocks):
            if ctx is None:
                x = run(block, x, vec, pe, attn_fn=attn_fn)
            else:
                x = run(single_block_forward, block, x, vec, pe, ctx, f"single_blocks.{i}")
        img = x[:, txt.shape[1] : txt.shape[1] + n_img]
        return self.final_layer(img, vec)


def _direct(fn, *args, **kwargs):
    return fn(*args, **kwargs)


def _checkpointed(fn, *args, **kwargs):
    return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False, **kwargs)


def strip_comfy_prefix(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop ComfyUI's ``model.diffusion_model.`` (or ``diffusion_model.``) key prefix if present."""
    for prefix in COMFY_PREFIXES:
        if any(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def params_from_state_dict(sd: dict[str, Tensor], source: str = "state dict") -> FluxParams:
    """Infer :class:`FluxParams` from FLUX.1 weights; :class:`FluxLoadError` if it is not FLUX.1."""
    if _DETECT_KEY not in sd or "img_in.weight" not in sd:
        some = ", ".join(sorted(sd)[:4]) or "no tensors"
        raise FluxLoadError(
            f"{source} is not a FLUX.1 transformer (no '{_DETECT_KEY}' / 'img_in.weight'; found e.g. {some}). "
            "Pick flux1-dev.safetensors (the diffusion model), not a VAE, text encoder or LoRA."
        )
    hidden, in_channels = sd["img_in.weight"].shape
    head_dim = sd[_DETECT_KEY].shape[0]
    depth = len({int(m.group(1)) for k in sd if (m := re.match(r"double_blocks\.(\d+)\.", k))})
    single = len({int(m.group(1)) for k in sd if (m := re.match(r"single_blocks\.(\d+)\.", k))})
    mlp_hidden = sd["double_blocks.0.img_mlp.0.weight"].shape[0]
    return FluxParams(
        in_channels=in_channels,
        out_channels=sd["final_layer.linear.weight"].shape[0],
        vec_in_dim=sd["vector_in.in_layer.weight"].shape[1],
        context_in_dim=sd["txt_in.weight"].shape[1],
        hidden_size=hidden,
        mlp_ratio=mlp_hidden / hidden,
        num_heads=hidden // head_dim,
        depth=depth,
        depth_single_blocks=single,
        axes_dim=axes_dim_for(head_dim),
        qkv_bias="double_blocks.0.img_attn.qkv.bias" in sd,
        guidance_embed="guidance_in.in_layer.weight" in sd,
    )


#: safetensors dtype names -> torch dtypes (the ones model files use).
_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path: str | os.PathLike, what: str = "model") -> dict[str, Tensor]:
    """All tensors of a safetensors file, memory-mapped (copy-on-write, CPU); a clear error for missing or
    non-safetensors files.

    The tensors are views of one private mapping of the file, so nothing is read until used and the page cache
    holds the weights once per machine however many processes load them (8 training processes on a node share
    one copy of FLUX instead of 8). Casting to another dtype or moving to a GPU copies, as usual. A tensor whose
    offset does not fit its dtype's alignment (not written by ``safetensors``) is copied instead.
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FluxLoadError(f"{what} file not found: {source}")
    try:
        with safe_open(source, framework="pt") as f:  # validates the header and the offsets
            names = list(f.keys())
        with open(source, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
    except (SafetensorError, OSError, ValueError) as exc:
        raise FluxLoadError(f"{source} is not a readable safetensors file ({exc}); use .safetensors weights") from None
    storage = torch.UntypedStorage.from_file(source, shared=False, nbytes=os.path.getsize(source))
    data_start = 8 + header_len
    out = {}
    for name in names:
        info = header[name]
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise FluxLoadError(f"{source}: tensor {name} has dtype {info['dtype']}, which torch cannot load")
        begin, end = info["data_offsets"]
        raw = torch.empty(0, dtype=torch.uint8).set_(storage, data_start + begin, (end - begin,))
        if (data_start + begin) % dtype.itemsize:
            raw = raw.clone()
        out[name] = raw.view(dtype).reshape(info["shape"])
    return out


def load_flux(path: str | os.PathLike, dtype: torch.dtype = torch.bfloat16, device="cpu") -> Flux:
    """Load a FLUX.1 transformer from safetensors (bare or ComfyUI-prefixed keys)."""
    source = os.fspath(path)
    sd = strip_comfy_prefix(read_safetensors(source, "FLUX transformer"))
    return flux_from_state_dict(sd, source, dtype, device)


def flux_from_state_dict(
    sd: dict[str, Tensor], source: str = "state dict", dtype: torch.dtype = torch.float32, device="cpu"
) -> Flux:
    sd = strip_comfy_prefix(sd)
    params = params_from_state_dict(sd, source)
    with torch.device("meta"):
        model = Flux(params)
    mismatch = state_dict_mismatch(model, sd)
    if mismatch:
        raise FluxLoadError(f"{source} does not match the FLUX.1 layout: {mismatch}")
    assign_state_dict(model, sd, dtype)
    return model.to(device)
