"""How AnyPhoto attaches to a ComfyUI FLUX model: a DIFFUSION_MODEL wrapper plus per-call patches.

Host-agnostic on purpose (no ``comfy`` import): ComfyUI pieces (its attention kernel, the wrapper
registration) are passed in by :mod:`nodes.model`, so the tests can drive these callbacks with the
core's reference FLUX and args dicts shaped like ComfyUI's.

Per diffusion-model call, :class:`AnyPhotoWrapper`:

1. reads ``transformer_options["sigmas"]`` (start/end gating) and ``["cond_or_uncond"]``
   (0 = cond, 1 = uncond; identities are visible to the global tokens of cond rows only);
2. copies ``transformer_options`` and adds a ``post_input`` patch
   (:meth:`~anyphoto_core.identity.IdentityInputs.append_to_image`: identity tokens through the
   model's own ``img_in``, fp32 RoPE ids) and ``patches_replace["dit"][("double_block"|"single_block", i)]``
   callbacks that run the core block forwards (:mod:`anyphoto_core.blocks`) with the context of
   :meth:`~anyphoto_core.identity.IdentityInputs.context`;
3. calls the next executor. ComfyUI's ``_forward`` drops every appended token from the output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from anyphoto_core.attention import AttentionFn, sdpa_attention
from anyphoto_core.blocks import IdentityContext, double_block_forward, single_block_forward
from anyphoto_core.identity import IdentityInputs

WRAPPER_KEY = "anyphoto"
#: ``transformer_options`` flag that drops the identities for one call (identity guidance's second pass).
DISABLE_FLAG = "anyphoto_identities_off"
#: ``transformer_options`` flag that runs one call with the trained null identities (identity guidance's
#: second pass; :func:`anyphoto_core.conditioning.null_identity_inputs`).
NULL_FLAG = "anyphoto_identities_null"
#: ``transformer_options`` flag for the paper's "all visible" ablation (no identity isolation).
ALL_VISIBLE_FLAG = "anyphoto_all_visible"
#: Submodules the core block forwards call on a FLUX double / single block.
DOUBLE_BLOCK_PARTS = (
    "img_mod",
    "img_norm1",
    "img_attn",
    "img_norm2",
    "img_mlp",
    "txt_mod",
    "txt_norm1",
    "txt_attn",
    "txt_norm2",
    "txt_mlp",
)
SINGLE_BLOCK_PARTS = ("modulation", "pre_norm", "linear1", "norm", "mlp_act", "linear2")

AttentionFactory = Callable[[dict], AttentionFn]


class NotFluxError(ValueError):
    """The MODEL is not a FLUX.1 transformer AnyPhoto can patch; the message says what is missing."""


def check_flux_model(diffusion_model) -> tuple[int, int]:
    """Check ``diffusion_model`` has FLUX.1 double/single blocks the core forwards can drive.

    Returns ``(depth, depth_single_blocks)``; raises :class:`NotFluxError` otherwise.
    """
    kind = type(diffusion_model).__name__
    for name in ("img_in", "double_blocks", "single_blocks"):
        if not hasattr(diffusion_model, name):
            raise NotFluxError(
                f"AnyPhoto needs a FLUX.1 model (flux1-dev), but this MODEL's diffusion model ({kind}) has no "
                f"'{name}'. Load FLUX.1-dev with UNETLoader / Load Diffusion Model."
            )
    for label, blocks, parts in (
        ("double", diffusion_model.double_blocks, DOUBLE_BLOCK_PARTS),
        ("single", diffusion_model.single_blocks, SINGLE_BLOCK_PARTS),
    ):
        for i, block in enumerate(blocks):
            missing = [p for p in parts + ("num_heads",) if not hasattr(block, p)]
            if missing:
                raise NotFluxError(
                    f"{label} block {i} of this MODEL ({kind}) lacks {missing}; AnyPhoto supports FLUX.1 "
                    "(black-forest-labs layout) only, not wrapped models such as Nunchaku"
                )
            if getattr(block, "flipped_img_txt", False):
                raise NotFluxError(f"{label} block {i} uses the flipped [img, txt] order; only FLUX.1 is supported")
    return len(diffusion_model.double_blocks), len(diffusion_model.single_blocks)


def row_flags(cond_or_uncond: Sequence[int] | None, batch: int, device) -> Tensor | None:
    """``(B,)`` bool, True for cond rows (identity visible to global tokens); None = all rows cond."""
    if not cond_or_uncond:
        return None
    if batch % len(cond_or_uncond):
        raise ValueError(f"batch {batch} is not a multiple of the {len(cond_or_uncond)} cond/uncond chunks")
    per_chunk = batch // len(cond_or_uncond)
    flags = torch.tensor([c == 0 for c in cond_or_uncond], device=device)
    return flags.repeat_interleave(per_chunk)


class PostInputPatch:
    """``post_input``: append the identity tokens (via the model's ``img_in``) and fp32 ids to img/img_ids.

    ``ran`` tells the block patches of the same call that the tokens are there."""

    def __init__(self, inputs: IdentityInputs, img_in: Callable[[Tensor], Tensor]):
        self.inputs, self.img_in = inputs, img_in
        self.ran = False

    def __call__(self, args: dict, **kwargs) -> dict:
        out = dict(args)
        out["img"], out["img_ids"] = self.inputs.append_to_image(args["img"], args["img_ids"], self.img_in)
        self.ran = True
        return out


ContextFn = Callable[[Tensor], IdentityContext]


class BlockPatch:
    """Shared body of the ``patches_replace["dit"]`` block callbacks.

    Refuses a forward whose ``post_input`` patch did not run (``post_input.ran``: a node that replaced FLUX's
    forward, such as TeaCache, would leave the identity tokens out and the last image tokens would be taken
    for them) and an attention mask; then runs :meth:`forward` (the core block forward) with the call's
    :class:`~anyphoto_core.blocks.IdentityContext` (``context(vec)``) and the block's adapter path
    ``"<PATH>.<index>"``. ``KIND`` is the block's key in ``patches_replace["dit"]``, ``PATH`` its
    module list in the FLUX model.
    """

    KIND = PATH = ""

    def __init__(self, context: ContextFn, index: int, block, post_input: PostInputPatch):
        self.context, self.index, self.block, self.post_input = context, index, block, post_input

    def __call__(self, args: dict, extra: dict, **kwargs) -> dict:
        if not self.post_input.ran:
            raise RuntimeError(
                "AnyPhoto's identity tokens were never added to this FLUX forward: another node replaced FLUX's "
                "forward and skips ComfyUI's post_input patches (e.g. TeaCache). Remove that node from the "
                "AnyPhoto model path (caching nodes are not supported with AnyPhoto)"
            )
        if args.get("attn_mask") is not None:
            raise ValueError(
                "AnyPhoto cannot be combined with an attention-mask conditioning (e.g. StyleModelApply with "
                "strength_type attn_bias): remove that node or set its strength_type to multiply"
            )
        return self.forward(args, self.context(args["vec"]), f"{self.PATH}.{self.index}")

    def forward(self, args: dict, ctx: IdentityContext, path: str) -> dict:
        raise NotImplementedError


class DoubleBlockPatch(BlockPatch):
    """``patches_replace["dit"][("double_block", i)]``: the core double-block forward."""

    KIND, PATH = "double_block", "double_blocks"

    def forward(self, args: dict, ctx: IdentityContext, path: str) -> dict:
        img, txt = double_block_forward(self.block, args["img"], args["txt"], args["vec"], args["pe"], ctx, path)
        return {"img": img, "txt": txt}


class SingleBlockPatch(BlockPatch):
    """``patches_replace["dit"][("single_block", i)]``: the core single-block forward."""

    KIND, PATH = "single_block", "single_blocks"

    def forward(self, args: dict, ctx: IdentityContext, path: str) -> dict:
        return {"img": single_block_forward(self.block, args["img"], args["vec"], args["pe"], ctx, path)}


def current_sigma(transformer_options: dict) -> float | None:
    sigmas = transformer_options.get("sigmas")
    if sigmas is None:
        return None
    return float(torch.as_tensor(sigmas).max())


def patched_options(transformer_options: dict, inputs: IdentityInputs, context: ContextFn, diffusion_model) -> dict:
    """A copy of ``transformer_options`` with AnyPhoto's post_input and block patches added
    (the caller's dicts and lists are never modified)."""
    options = dict(transformer_options)
    patches = {k: list(v) for k, v in options.get("patches", {}).items()}
    post_input = PostInputPatch(inputs, diffusion_model.img_in)
    patches.setdefault("post_input", []).append(post_input)
    replace = {k: dict(v) for k, v in options.get("patches_replace", {}).items()}
    dit = replace.setdefault("dit", {})
    for patch in (DoubleBlockPatch, SingleBlockPatch):
        for i, block in enumerate(getattr(diffusion_model, patch.PATH)):
            dit[(patch.KIND, i)] = patch(context, i, block, post_input)
    options["patches"], options["patches_replace"] = patches, replace
    return options


@dataclass(frozen=True)
class SigmaWindow:
    """Identities act while ``end <= sigma <= start`` (from AnyPhotoApply's start/end percent)."""

    start: float = float("inf")
    end: float = 0.0

    def contains(self, sigma: float | None) -> bool:
        return sigma is None or self.end <= sigma <= self.start


class AnyPhotoWrapper:
    """``WrappersMP.DIFFUSION_MODEL`` wrapper. Called as ``wrapper(executor, x, timestep, context, y,
    guidance, ref_latents, control, transformer_options, **kwargs)``; ``executor.class_obj`` is the
    FLUX module. ``inputs``: the core identity inputs AnyPhotoApply built (on the CPU; moved per call
    by the core's methods); ``attention(transformer_options)`` returns the attention kernel for the call.

    A call outside ``window``, with :data:`DISABLE_FLAG`, or without identity tokens runs unpatched; a call
    with :data:`NULL_FLAG` runs with ``null_inputs`` (the trained null, for identity guidance)."""

    TRANSFORMER_OPTIONS_POSITION = 7

    def __init__(
        self,
        inputs: IdentityInputs,
        window: SigmaWindow = SigmaWindow(),
        attention: AttentionFactory = lambda options: sdpa_attention,
        chain_key: tuple = (),
        null_inputs: IdentityInputs | None = None,
    ):
        self.inputs, self.window, self.attention = inputs, window, attention
        self.chain_key = chain_key  # what a chained AnyPhoto Apply must share to join these identities
        self.null_inputs = null_inputs

    def __call__(self, executor, *args, **kwargs):
        args = list(args)
        pos = self.TRANSFORMER_OPTIONS_POSITION
        if "transformer_options" in kwargs:
            options = kwargs["transformer_options"]
        elif len(args) > pos:
            options = args[pos]
        else:
            options = {}
        x = args[0] if args else kwargs["x"]
        self.inputs.check_latent(x.shape[-2:])
        if (
            options.get(DISABLE_FLAG, False)
            or self.inputs.total == 0
            or not self.window.contains(current_sigma(options))
        ):
            return executor(*args, **kwargs)
        inputs = self.inputs
        if options.get(NULL_FLAG, False):
            if self.null_inputs is None:
                raise ValueError("this AnyPhoto model has no null identity inputs; apply it again with AnyPhotoApply")
            inputs = self.null_inputs
        context = functools.partial(
            inputs.context,
            attn_fn=self.attention(options),
            isolate=not options.get(ALL_VISIBLE_FLAG, False),
            global_sees_identities=row_flags(options.get("cond_or_uncond"), x.shape[0], x.device),
        )
        new_options = patched_options(options, inputs, context, executor.class_obj)
        if "transformer_options" in kwargs or len(args) <= pos:
            kwargs["transformer_options"] = new_options
        else:
            args[pos] = new_options
        return executor(*args, **kwargs)
