"""Benchmark: forward cost of the AnyPhoto FLUX (``Flux.forward_anyphoto`` + adapter) vs stock FLUX.

    python benchmarks/forward_cost.py [--quick] [--json] [--threads 2] [--rounds N]
        [--sizes 1024 512] [--ids 1 2 4 8] [--unpruned-ids 4] [--token-matched]

Real FLUX.1 width (hidden 3072, 24 heads x 128, MLP 12288, 512 text tokens), random weights, one
batch row, image 1024^2 (4096 tokens) and 512^2 (1024 tokens), 0/1/2/4/8 identities whose token
counts come from real canvases built by the core (``benchmarks/_common.py``), pruned as the paper
does and unpruned (every identity brings a full-size canvas, the OminiControl-style alternative).
On CPU: 1 double + 1 single block in bf16 (the cost per block is what matters; the floor is the
same for every block). On CUDA: full depth (19 + 38) in bf16.

Per row: time ratio to stock with its spread over interleaved rounds (median [min-max]; every
round's ratio in ``--json``), the token-count floor (ideal ratio given the extra tokens,
:func:`_common.forward_floor`), peak activation memory ratio (adapter and model weights excluded:
they exist before the call), and the total-memory ratio with the weights of a full-depth FLUX.1-dev
counted (adapter still excluded). ``--token-matched`` adds, per pruned identity count, stock FLUX
with ``M`` extra text tokens (the same sequence length, plain attention): its ratio is what the
extra tokens alone cost on this machine, so AnyPhoto / token-matched stock isolates the method's own
overhead from how the hardware scales with sequence length. Each round is printed as soon as it ends
(``--json``: one ``{"kind": "round"}`` object per round before the ``{"kind": "row"}`` objects of its size),
so a stopped run keeps its rounds: ``python benchmarks/rounds_summary.py run.jsonl`` gives their spreads.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import torch
from _common import (
    DTYPES,
    RoundPrinter,
    benchmark_arg_parser,
    block_flops,
    environment,
    format_spread,
    forward_floor,
    identity_tokens,
    image_tokens,
    paired_rounds,
    spread,
    spread_text,
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
    adapter = AnyPhotoAdapter(AdapterConfig.for_flux(params, rank=LORA_RANK, alpha=float(LORA_RANK)))
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


def stock_inputs(
    size: int, device: torch.device, dtype: torch.dtype, params: FluxParams, text_tokens: int = N_TXT
) -> tuple:
    """``(img, img_ids, txt, txt_ids, t, y, guidance)`` of one batch row: random ``size``^2 latent tokens and
    ``text_tokens`` random text embeddings (FLUX.1's T5 length by default)."""
    side = size // 16
    g = torch.Generator(device=device).manual_seed(2)
    img = torch.randn(1, side * side, params.in_channels, generator=g, device=device, dtype=dtype)
    img_ids = image_token_ids(side, side, device=device)[None]
    txt = torch.randn(1, text_tokens, params.context_in_dim, generator=g, device=device, dtype=dtype)
    txt_ids = torch.zeros(1, text_tokens, 3, device=device)
    t = torch.full((1,), 0.5, device=device, dtype=dtype)
    y = torch.randn(1, params.vec_in_dim, generator=g, device=device, dtype=dtype)
    guidance = torch.full((1,), 3.5, device=device, dtype=dtype)
    return img, img_ids, txt, txt_ids, t, y, guidance


@dataclasses.dataclass(frozen=True)
class Config:
    """One timed configuration: ``mode`` is "stock", "pruned", "unpruned" or "token-matched" (stock
    FLUX with ``extra_text`` more text tokens); ``batch`` the identities (None for the stock modes)."""

    mode: str
    identities: int
    lengths: tuple[int, ...] = ()
    batch: object = None
    extra_text: int = 0


def configurations(
    size: int,
    ids: list[int],
    unpruned_ids: list[int],
    adapter: AnyPhotoAdapter,
    device: torch.device,
    dtype: torch.dtype,
    token_matched: Sequence[int] = (),
) -> dict[str, Config]:
    """``{name: Config}``, stock first; a stock row of the same length after each pruned count in ``token_matched``."""
    out = {"stock": Config("stock", 0)}
    embeddings = torch.nn.functional.normalize(torch.randn(8, 512, generator=torch.Generator().manual_seed(3)), dim=-1)
    for mode, counts in (("pruned", ids), ("unpruned", unpruned_ids)):
        for n in counts:
            tokens = [
                type(t)(t.tokens.to(device=device, dtype=dtype), t.ids.to(device), t.index, t.grid)
                for t in identity_tokens(size, n, pruned=mode == "pruned")
            ]
            batch = identity_inputs(adapter, tokens, embeddings[:n].to(device)).to(device, dtype)
            out[f"{mode} x{n}"] = Config(mode, n, batch.lengths, batch)
            if mode == "pruned" and n in token_matched:
                out[f"stock +{sum(batch.lengths)}"] = Config("token-matched", n, extra_text=sum(batch.lengths))
    return out


def forward_call(model: Flux, inputs: tuple, config: Config):
    """A no-argument function running ``config``'s forward on ``inputs`` (:func:`stock_inputs`)."""
    img, img_ids, txt, txt_ids, t, y, guidance = inputs
    if config.extra_text:
        g = torch.Generator(device=txt.device).manual_seed(4)
        more = torch.randn(1, config.extra_text, txt.shape[-1], generator=g, device=txt.device, dtype=txt.dtype)
        txt = torch.cat([txt, more], dim=1)
        txt_ids = torch.zeros(1, txt.shape[1], 3, device=txt.device)
    args = (img, img_ids, txt, txt_ids, t, y, guidance)

    def call():
        with torch.inference_mode():
            if config.batch is None:
                return model(*args)
            return model.forward_anyphoto(*args, config.batch)

    return call


def config_floor(config: Config, n_global: int, params: FluxParams) -> float:
    """Token-count floor of ``config`` (:func:`_common.block_flops` ratio to stock)."""
    dims = (params.hidden_size, params.mlp_hidden_dim, LORA_RANK)
    if config.mode == "token-matched":
        return block_flops(n_global + config.extra_text, (), *dims) / block_flops(n_global, (), *dims)
    return forward_floor(n_global, config.lengths, *dims)


def run(args) -> list[dict]:
    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    dtype = DTYPES[args.dtype]
    torch.set_num_threads(args.threads)
    base = FluxParams.flux1_dev()
    double, single = args.depth or ((base.depth, base.depth_single_blocks) if cuda else (1, 1))
    params = FluxParams(depth=double, depth_single_blocks=single)
    model = random_flux(params, device, dtype)
    adapter = random_adapter(params, device, dtype)
    env = {**environment(device, dtype), "clock": "wall" if cuda else args.clock}
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
            f"threads {env['threads']}, clock {env['clock']}, depth {params.depth}+{params.depth_single_blocks}, "
            f"adapter weights {env['adapter_bytes'] / 2**20:.0f} MiB (excluded), {args.rounds} interleaved rounds; "
            "ratios are median [min-max] over rounds"
        )
    rows = []
    for size in args.sizes:
        n_img = image_tokens(size)
        n_global = N_TXT + n_img
        inputs = stock_inputs(size, device, dtype, params)
        configs = configurations(size, args.ids, args.unpruned_ids, adapter, device, dtype, args.token_matched)
        fns = {name: forward_call(model, inputs, cfg) for name, cfg in configs.items()}
        printer = RoundPrinter({"size": size}, args.rounds, args.json)
        timing = paired_rounds(fns, "stock", args.rounds, device, args.clock, on_round=printer)
        for name, cfg in configs.items():
            rows.append(_row(env, size, n_global, name, cfg, configs, timing, config_floor(cfg, n_global, params)))
            rows[-1]["total_memory_ratio_full_flux"] = (weights_full + timing[name]["peak_bytes"]) / (
                weights_full + timing["stock"]["peak_bytes"]
            )
            _print_row(rows[-1], name, args.json)
    return rows


def _row(env: dict, size: int, n_global: int, name: str, cfg: Config, configs: dict, timing: dict, floor: float):
    t, stock = timing[name], timing["stock"]
    ratios = t["ratio_rounds"]
    row = {
        "kind": "row",
        **env,
        "size": size,
        "name": name,
        "mode": cfg.mode,
        "identities": cfg.identities,
        "image_tokens": n_global - N_TXT,
        "identity_tokens": list(cfg.lengths),
        "total_tokens": n_global + sum(cfg.lengths) + cfg.extra_text,
        "seconds": t["seconds"],
        "seconds_spread": t["seconds_spread"],
        "stock_seconds": stock["seconds"],
        "time_ratio": t["ratio"],
        "time_ratio_spread": t["ratio_spread"],
        "time_ratio_rounds": ratios,
        "floor": floor,
        "ratio_over_floor_spread": spread([r / floor for r in ratios]),
        "samples": t["samples"],
        "peak_activation_bytes": t["peak_bytes"],
        "activation_ratio": t["peak_bytes"] / stock["peak_bytes"],
        "token_ratio": (n_global + sum(cfg.lengths) + cfg.extra_text) / n_global,
    }
    matched = f"stock +{sum(cfg.lengths)}"
    if cfg.mode == "pruned" and matched in configs:
        row["ratio_to_token_matched_spread"] = spread(
            [a / b for a, b in zip(t["seconds_rounds"], timing[matched]["seconds_rounds"], strict=True)]
        )
    return row


def _print_row(row: dict, name: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    ratios = row["time_ratio_rounds"]
    over = [r / row["floor"] for r in ratios]
    matched = row.get("ratio_to_token_matched_spread")
    print(
        f"{row['size']:>5} {name:>12} M={sum(row['identity_tokens']):>6} {row['seconds']:8.2f}s "
        f"ratio {format_spread(ratios)} floor {row['floor']:6.3f} (x{format_spread(over)})"
        + (f" vs token-matched x{spread_text(matched)}" if matched else "")
        + f"  act {row['peak_activation_bytes'] / 2**20:7.0f} MiB ratio {row['activation_ratio']:5.3f} "
        f"(tokens {row['token_ratio']:5.3f})  total {row['total_memory_ratio_full_flux']:5.3f}",
        flush=True,
    )


def parse_args(argv=None):
    parser = benchmark_arg_parser(__doc__, "1024^2, 4 identities, one round (a few minutes on 2 CPU cores)")
    parser.add_argument("--sizes", type=int, nargs="+", help="image sides (default 1024 512)")
    parser.add_argument("--ids", type=int, nargs="*", help="pruned identity counts (default 1 2 4 8)")
    parser.add_argument("--unpruned-ids", type=int, nargs="*", help="unpruned identity counts (default 4)")
    parser.add_argument(
        "--token-matched",
        type=int,
        nargs="*",
        metavar="N",
        help="add stock rows with M extra text tokens for these pruned identity counts (no value: all of --ids)",
    )
    parser.add_argument(
        "--depth",
        type=int,
        nargs=2,
        metavar=("DOUBLE", "SINGLE"),
        help="blocks of each kind (default: 1 1 on CPU, 19 38 on CUDA); ratios are per forward of this depth",
    )
    args = parser.parse_args(argv)
    if args.depth and (min(args.depth) < 0 or sum(args.depth) < 1):
        parser.error("--depth needs at least one block and no negative count")
    quick = args.quick
    args.sizes = args.sizes or ([1024] if quick else [1024, 512])
    args.ids = args.ids if args.ids is not None else ([4] if quick else [1, 2, 4, 8])
    args.unpruned_ids = args.unpruned_ids if args.unpruned_ids is not None else [4]
    if args.token_matched is not None and not args.token_matched:
        args.token_matched = args.ids
    args.token_matched = args.token_matched or []
    if set(args.token_matched) - set(args.ids):
        parser.error(f"--token-matched {args.token_matched}: every count must also be in --ids {args.ids}")
    args.rounds = args.rounds or (1 if quick else 5)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


if __name__ == "__main__":
    run(parse_args())
