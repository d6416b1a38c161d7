"""Benchmark: forward cost of the AnyPhoto FLUX (``Flux.forward_anyphoto`` + adapter) vs stock FLUX.

    python benchmarks/forward_cost.py [--quick] [--json] [--threads 2] [--rounds N]

Real FLUX.1 width (hidden 3072, 24 heads x 128, MLP 12288, 512 text tokens), random weights, one
batch row, image 1024^2 (4096 tokens) and 512^2 (1024 tokens), 0/1/2/4/8 identities whose token
counts come from real canvases built by the core (``benchmarks/_common.py``), pruned as the paper
does and unpruned (every identity brings a full-size canvas, the OminiControl-style alternative).
On CPU: 1 double + 1 single block in bf16 (the cost per block is what matters; the floor is the
same for every block). On CUDA: full depth (19 + 38) in bf16.

Per row: time ratio to stock (median of paired rounds), the token-count floor (ideal ratio given
the extra tokens, :func:`_common.forward_floor`), peak activation memory ratio (adapter and model
weights excluded: they exist before the call), and the total-memory ratio with the weights of a
full-depth FLUX.1-dev counted (adapter still excluded). ``--json`` prints one JSON object a row.
"""

from __future__ import annotations

import json
import math

import torch
from _common import (
    benchmark_arg_parser,
    environment,
    forward_floor,
    identity_tokens,
    image_tokens,
    paired_rounds,
)

from anyphoto_core.adapter import AdapterConfig, AnyPhotoAdapter
from anyphoto_core.conditioning import identity_inputs
from anyphoto_core.flux import Flux, FluxParams
from anyphoto_core.tokens import image_token_ids

N_TXT = 512
LORA_RANK = 16


def random_flux(params: FluxParams, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Flux:
    """FLUX with random weights (normal, std 0.02; norm scales 1), built without a CPU copy."""
    with torch.device("meta"):
        model = Flux(params)
    model = model.to_empty(device=device).to(dtype).eval().requires_grad_(False)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".scale"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    return model


def random_adapter(params: FluxParams, device: torch.device, dtype: torch.dtype) -> AnyPhotoAdapter:
    """Adapter for ``params`` with non-zero LoRA B (so the LoRA work is really done)."""
    torch.manual_seed(1)
    config = AdapterConfig(
        hidden_size=params.hidden_size,
        mlp_hidden_dim=params.mlp_hidden_dim,
        depth=params.depth,
        depth_single_blocks=params.depth_single_blocks,
        rank=LORA_RANK,
        alpha=float(LORA_RANK),
    )
    adapter = AnyPhotoAdapter(config)
    with torch.no_grad():
        for key, t in adapter.adapter_state_dict().items():
            if key.endswith("lora_B.weight") or key.startswith("projector.2"):
                t.normal_(0, 0.02)
    return adapter.to(device=device, dtype=dtype).eval().requires_grad_(False)


def param_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def full_flux_bytes(dtype: torch.dtype) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in Flux(FluxParams.flux1_dev()).parameters()) * dtype.itemsize


def stock_inputs(size: int, device: torch.device, dtype: torch.dtype, params: FluxParams) -> tuple:
    side = size // 16
    g = torch.Generator(device=device).manual_seed(2)
    img = torch.randn(1, side * side, params.in_channels, generator=g, device=device, dtype=dtype)
    img_ids = image_token_ids(side, side, device=device)[None]
    txt = torch.randn(1, N_TXT, params.context_in_dim, generator=g, device=device, dtype=dtype)
    txt_ids = torch.zeros(1, N_TXT, 3, device=device)
    t = torch.full((1,), 0.5, device=device, dtype=dtype)
    y = torch.randn(1, params.vec_in_dim, generator=g, device=device, dtype=dtype)
    guidance = torch.full((1,), 3.5, device=device, dtype=dtype)
    return img, img_ids, txt, txt_ids, t, y, guidance


def configurations(
    size: int,
    ids: list[int],
    unpruned_ids: list[int],
    adapter: AnyPhotoAdapter,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, tuple[str, int, tuple[int, ...], object]]:
    """``{name: (mode, identities, lengths, IdentityInputs | None)}``, stock first."""
    out = {"stock": ("stock", 0, (), None)}
    embeddings = torch.nn.functional.normalize(torch.randn(8, 512, generator=torch.Generator().manual_seed(3)), dim=-1)
    for mode, counts in (("pruned", ids), ("unpruned", unpruned_ids)):
        for n in counts:
            tokens = [
                type(t)(t.tokens.to(device=device, dtype=dtype), t.ids.to(device), t.index, t.grid)
                for t in identity_tokens(size, n, pruned=mode == "pruned")
            ]
            batch = identity_inputs(adapter, tokens, embeddings[:n].to(device)).to(device, dtype)
            out[f"{mode} x{n}"] = (mode, n, batch.lengths, batch)
    return out


def run(args) -> list[dict]:
    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16
    torch.set_num_threads(args.threads)
    base = FluxParams.flux1_dev()
    params = base if cuda else FluxParams(depth=1, depth_single_blocks=1)
    model = random_flux(params, device, dtype)
    adapter = random_adapter(params, device, dtype)
    env = environment(device, dtype)
    env.update(
        depth=params.depth,
        depth_single_blocks=params.depth_single_blocks,
        hidden=params.hidden_size,
        heads=params.num_heads,
        text_tokens=N_TXT,
        lora_rank=LORA_RANK,
        adapter_bytes=param_bytes(adapter),
        model_bytes=param_bytes(model),
    )
    weights_full = full_flux_bytes(dtype)
    if not args.json:
        print(
            f"torch {env['torch']} on {env['device']} ({env.get('gpu', env['machine'])}), {env['dtype']}, "
            f"threads {env['threads']}, depth {params.depth}+{params.depth_single_blocks}, "
            f"adapter weights {env['adapter_bytes'] / 2**20:.0f} MiB (excluded), rounds {args.rounds}"
        )
    rows = []
    for size in args.sizes:
        n_img = image_tokens(size)
        inputs = stock_inputs(size, device, dtype, params)
        configs = configurations(size, args.ids, args.unpruned_ids, adapter, device, dtype)

        def call(batch, inputs=inputs):
            with torch.inference_mode():
                if batch is None:
                    return model(*inputs)
                return model.forward_anyphoto(*inputs, batch)

        fns = {name: (lambda b=cfg[3]: call(b)) for name, cfg in configs.items()}
        timing = paired_rounds(fns, "stock", args.rounds, device)
        peaks = {name: t["peak_bytes"] for name, t in timing.items()}
        for name, (mode, n, lengths, _) in configs.items():
            n_global = N_TXT + n_img
            floor = forward_floor(n_global, lengths, params.hidden_size, params.mlp_hidden_dim, LORA_RANK)
            ratio = timing[name]["ratio"]
            rows.append(
                {
                    **env,
                    "size": size,
                    "mode": mode,
                    "identities": n,
                    "image_tokens": n_img,
                    "identity_tokens": list(lengths),
                    "total_tokens": n_global + sum(lengths),
                    "seconds": timing[name]["seconds"],
                    "stock_seconds": timing["stock"]["seconds"],
                    "time_ratio": ratio,
                    "floor": floor,
                    "ratio_over_floor": ratio / floor,
                    "samples": timing[name]["samples"],
                    "peak_activation_bytes": peaks[name],
                    "activation_ratio": peaks[name] / peaks["stock"],
                    "token_ratio": (n_global + sum(lengths)) / n_global,
                    "total_memory_ratio_full_flux": (weights_full + peaks[name]) / (weights_full + peaks["stock"]),
                }
            )
            row = rows[-1]
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(
                    f"{size:>5} {name:>12} M={sum(lengths):>6} {row['seconds']:8.2f}s "
                    f"ratio {ratio:6.3f} floor {floor:6.3f} (x{ratio / floor:5.3f})  "
                    f"act {peaks[name] / 2**20:7.0f} MiB ratio {row['activation_ratio']:5.3f} "
                    f"(tokens {row['token_ratio']:5.3f})  total {row['total_memory_ratio_full_flux']:5.3f}",
                    flush=True,
                )
    return rows


def parse_args(argv=None):
    parser = benchmark_arg_parser(__doc__, "fewer rows, one round (a few minutes on 2 CPU cores)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.ids, args.unpruned_ids = [1024], [4], [4]
        args.rounds = args.rounds or 1
    else:
        args.sizes, args.ids, args.unpruned_ids = [1024, 512], [1, 2, 4, 8], [4]
        args.rounds = args.rounds or 2
    if args.rounds < 1 or math.isnan(args.rounds):
        parser.error("--rounds must be at least 1")
    return args


if __name__ == "__main__":
    run(parse_args())
