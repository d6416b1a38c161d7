"""Where the AnyPhoto forward's extra time goes: ``torch.profiler`` by op, AnyPhoto vs stock FLUX.

    python benchmarks/forward_profile.py [--size 512] [--ids 2 4] [--depth 1 1] [--dtype float32]
        [--threads 1] [--top 14] [--json]

Same model, inputs and identities as ``forward_cost.py`` (real FLUX.1 width, random weights,
identities from real canvases). Profiles, after one warm-up call each, stock FLUX, every pruned
identity count and its token-matched stock (``M`` extra text tokens, the same sequence length).
Prints per configuration the self time by op as CPU milliseconds (calls in brackets) for the ops with
the largest difference between AnyPhoto and its token-matched stock, and each call's CPU ms. The
profiler times ops on the wall clock, which on a shared machine includes waiting for a core, so an op's
CPU ms is its share of the profiled op time times the call's CPU time (``time.process_time``). One
profiled call per configuration: the table says where time goes (and the op counts are exact),
``forward_cost.py`` says how much, with its spread.
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
    """``({op: (self ms, calls)}, CPU ms of the whole call)`` of one profiled ``fn()``.

    The profiler's self times are on its own (wall) clock; the call's CPU ms is ``time.process_time``.
    """
    start = time.process_time()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    call_ms = (time.process_time() - start) * 1e3
    ops = {e.key: (e.self_cpu_time_total / 1e3, e.count) for e in prof.key_averages()}
    return ops, call_ms


def profile_configs(args) -> dict[str, dict]:
    """``{name: {"ops", "profiled_ms", "call_ms", ...}}`` for stock, each ``pruned xN`` and its token match."""
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


def cpu_ms(result: dict, op: str) -> float:
    """``op``'s self time as CPU ms: its share of the profiled op time times the call's CPU ms (assumes the
    machine's contention spread evenly over the call; on an idle machine the two clocks agree)."""
    return result["ops"].get(op, (0.0, 0))[0] / result["profiled_ms"] * result["call_ms"]


def comparison(results: dict[str, dict], ids: list[int], top: int) -> list[str]:
    """Markdown table: per op, CPU ms (calls) of stock and, per identity count, of AnyPhoto and its token match.

    Ops shown: the ``top`` with the largest ``|AnyPhoto - token-matched|`` at any identity count.
    """
    columns = ["stock"]
    for n in ids:
        columns += [f"pruned x{n}", f"stock +{sum(results[f'pruned x{n}']['identity_tokens'])}"]
    diff = defaultdict(float)
    for anyphoto, matched in zip(columns[1::2], columns[2::2], strict=True):
        for op in set(results[anyphoto]["ops"]) | set(results[matched]["ops"]):
            gap = abs(cpu_ms(results[anyphoto], op) - cpu_ms(results[matched], op))
            diff[op] = max(diff[op], gap)
    lines = ["| op | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for op in sorted(diff, key=diff.get, reverse=True)[:top]:
        cells = [f"{cpu_ms(results[c], op):.0f} ({results[c]['ops'].get(op, (0, 0))[1]})" for c in columns]
        lines.append(f"| `{op}` | " + " | ".join(cells) + " |")
    lines.append("| whole call (CPU ms) | " + " | ".join(f"{results[c]['call_ms']:.0f}" for c in columns) + " |")
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
        "self time by op in CPU ms (calls)"
    )
    print("\n".join(comparison(results, args.ids, args.top)))


if __name__ == "__main__":
    main()
