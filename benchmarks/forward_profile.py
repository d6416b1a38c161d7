"""Where the AnyPhoto forward's extra time goes: ``torch.profiler`` by op, AnyPhoto vs stock FLUX.

    python benchmarks/forward_profile.py [--size 512] [--ids 2 4] [--depth 1 1] [--dtype float32]
        [--threads 1] [--top 14] [--json]

Same model, inputs and identities as ``forward_cost.py`` (real FLUX.1 width, random weights,
identities from real canvases). Profiles, after one warm-up call each, stock FLUX, every pruned
identity count and its token-matched stock (``M`` extra text tokens, the same sequence length).
Prints per configuration the profiled self CPU time by op (milliseconds; calls in brackets) for the
ops with the largest difference between AnyPhoto and its token-matched stock, the sum over all ops,
and the rest of the call's CPU time (Python and dispatch outside any op). One profiled call per
configuration: the table says where time goes, ``forward_cost.py`` says how much with its spread.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import torch
from _common import DTYPES
from forward_cost import configurations, forward_call, random_adapter, random_flux, stock_inputs
from torch.profiler import ProfilerActivity, profile

from anyphoto_core.flux import FluxParams


def op_times(fn) -> tuple[dict[str, tuple[float, int]], float]:
    """``({op: (self CPU ms, calls)}, CPU ms of the whole call)`` of one profiled ``fn()``."""
    start = time.process_time()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    total_ms = (time.process_time() - start) * 1e3
    ops = {e.key: (e.self_cpu_time_total / 1e3, e.count) for e in prof.key_averages()}
    return ops, total_ms


def profile_configs(args) -> dict[str, dict]:
    """``{name: {"ops", "profiled_ms", "call_ms", "tokens"}}`` for stock, each ``pruned xN`` and its token match."""
    device, dtype = torch.device("cpu"), DTYPES[args.dtype]
    torch.set_num_threads(args.threads)
    params = FluxParams(depth=args.depth[0], depth_single_blocks=args.depth[1])
    model = random_flux(params, device, dtype)
    adapter = random_adapter(params, device, dtype)
    inputs = stock_inputs(args.size, device, dtype, params)
    configs = configurations(args.size, args.ids, [], adapter, device, dtype, token_matched=args.ids)
    out = {}
    for name, cfg in configs.items():
        fn = forward_call(model, inputs, cfg)
        fn()  # warm-up
        ops, call_ms = op_times(fn)
        out[name] = {
            "ops": ops,
            "profiled_ms": sum(ms for ms, _ in ops.values()),
            "call_ms": call_ms,
            "identity_tokens": list(cfg.lengths),
            "extra_text": cfg.extra_text,
        }
        print(f"profiled {name}: {call_ms:.0f} ms CPU", flush=True)
    return out


def comparison(results: dict[str, dict], ids: list[int], top: int) -> list[str]:
    """Markdown table: per op, ms (calls) of stock, and per identity count of AnyPhoto and token-matched."""
    pairs = []
    for n in ids:
        name = f"pruned x{n}"
        matched = f"stock +{sum(results[name]['identity_tokens'])}"
        pairs += [name, matched]
    columns = ["stock", *pairs]
    diff = defaultdict(float)
    for n in ids:
        anyphoto, matched = results[f"pruned x{n}"]["ops"], results[pairs[2 * ids.index(n) + 1]]["ops"]
        for op in set(anyphoto) | set(matched):
            diff[op] = max(diff[op], abs(anyphoto.get(op, (0, 0))[0] - matched.get(op, (0, 0))[0]))
    chosen = sorted(diff, key=diff.get, reverse=True)[:top]
    lines = ["| op | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for op in chosen:
        cells = [
            f"{results[c]['ops'].get(op, (0, 0))[0]:.1f} ({results[c]['ops'].get(op, (0, 0))[1]})" for c in columns
        ]
        lines.append(f"| `{op}` | " + " | ".join(cells) + " |")
    lines.append("| all ops (profiled) | " + " | ".join(f"{results[c]['profiled_ms']:.0f}" for c in columns) + " |")
    lines.append(
        "| outside ops (Python, dispatch) | "
        + " | ".join(f"{results[c]['call_ms'] - results[c]['profiled_ms']:.0f}" for c in columns)
        + " |"
    )
    return lines


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="also print every op of every configuration as JSON")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="see forward_cost.py --dtype")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--ids", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--depth", type=int, nargs=2, default=[1, 1], metavar=("DOUBLE", "SINGLE"))
    parser.add_argument("--top", type=int, default=14, help="ops shown (largest AnyPhoto - token-matched difference)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    results = profile_configs(args)
    if args.json:
        print(json.dumps({"args": vars(args), "results": results}))
    print(
        f"\n{args.size}^2, {args.dtype}, threads {args.threads}, depth {args.depth[0]}+{args.depth[1]}: "
        "self CPU ms by op (calls)"
    )
    print("\n".join(comparison(results, args.ids, args.top)))


if __name__ == "__main__":
    main()
