"""Benchmark: identity-isolated attention, fast path vs the masked reference.

    python benchmarks/attention_cost.py [--json] [--quick] [--threads 2] [--rounds N] [--clock cpu] [--sizes 1024 512]
        [--ids 1 2 4 8] [--unpruned-ids 4] [--dtype bfloat16]

Real FLUX.1 attention shape (24 heads x 128, bf16, one batch row), 512 text + 4096 / 1024 image
tokens, 1/2/4/8 identities with token counts from real canvases (pruned), plus 4 unpruned
canvases. Per row: seconds and peak memory of :func:`isolated_attention` and of
:func:`masked_reference_attention`, the time ratio fast / reference over interleaved rounds as
median [min-max] (every round's ratio in ``--json``; ``--control`` adds the reference timed twice, an A/A
ratio that shows the machine's own noise; ``--plain`` adds one unmasked call over all tokens, what stock FLUX
does at the same length), the memory ratio, and the largest attention
mask the fast path passed to the kernel (it must never be ``N x N``). Each round is printed as soon as it
ends (``--json``: a ``{"kind": "round"}`` object), so a stopped run keeps its rounds
(``python benchmarks/rounds_summary.py run.jsonl --keys size case``).
"""

from __future__ import annotations

import json

import torch
from _common import (
    DTYPES,
    RoundPrinter,
    benchmark_arg_parser,
    environment,
    format_spread,
    identity_tokens,
    image_tokens,
    paired_rounds,
    spread,
    spread_text,
)

from anyphoto_core.attention import isolated_attention, masked_reference_attention, sdpa_attention

N_TXT, HEADS, HEAD_DIM = 512, 24, 128
#: ``--control``: the reference timed a second time in every round, so its ratio to the reference shows how
#: far two identical calls differ on this machine (the noise band the fast path's ratio is read against).
CONTROL = "reference again"
#: ``--plain``: one unmasked call over all ``N`` tokens (what stock FLUX does at the same sequence length; not
#: isolated), so fast / plain is the cost of the star topology against no isolation at all.
PLAIN = "plain"


def run(args) -> list[dict]:
    cuda = torch.cuda.is_available() and not args.cpu
    device, dtype = torch.device("cuda" if cuda else "cpu"), DTYPES[args.dtype]
    torch.set_num_threads(args.threads)
    env = {**environment(device, dtype), "clock": "wall" if cuda else args.clock}
    rows = []
    for size in args.sizes:
        n_global = N_TXT + image_tokens(size)
        cases = [(f"pruned x{n}", n, True) for n in args.ids]
        cases += [(f"unpruned x{n}", n, False) for n in args.unpruned_ids]
        for name, n, pruned in cases:
            lengths = tuple(t.count for t in identity_tokens(size, n, pruned=pruned))
            total = n_global + sum(lengths)
            g = torch.Generator(device=device).manual_seed(0)
            shape = (1, HEADS, total, HEAD_DIM)
            q, k, v = (torch.randn(shape, generator=g, device=device, dtype=dtype) for _ in range(3))
            masks = []

            def spy(q_, k_, v_, mask, masks=masks):
                masks.append(0 if mask is None else mask.numel())
                return sdpa_attention(q_, k_, v_, mask)

            with torch.inference_mode():
                isolated_attention(q, k, v, n_global, lengths, attn_fn=spy)
                reference = lambda a=(q, k, v, n_global, lengths): masked_reference_attention(*a)  # noqa: E731
                fns = {"reference": reference, "fast": lambda a=(q, k, v, n_global, lengths): isolated_attention(*a)}
                if args.control:
                    fns[CONTROL] = reference
                if args.plain:
                    fns[PLAIN] = lambda a=(q, k, v, None): sdpa_attention(*a)
                printer = RoundPrinter({"size": size, "case": name}, args.rounds, args.json)
                timing = paired_rounds(fns, "reference", args.rounds, device, args.clock, on_round=printer)
                peaks = {key: t["peak_bytes"] for key, t in timing.items()}
            row = {
                "kind": "row",
                **env,
                "size": size,
                "case": name,
                "identity_tokens": list(lengths),
                "total_tokens": total,
                "fast_seconds": timing["fast"]["seconds"],
                "reference_seconds": timing["reference"]["seconds"],
                "time_ratio": timing["fast"]["ratio"],
                "time_ratio_spread": timing["fast"]["ratio_spread"],
                "time_ratio_rounds": timing["fast"]["ratio_rounds"],
                "control_ratio_spread": timing[CONTROL]["ratio_spread"] if args.control else None,
                "control_ratio_rounds": timing[CONTROL]["ratio_rounds"] if args.control else None,
                "fast_over_plain_spread": spread(
                    [
                        f / p
                        for f, p in zip(timing["fast"]["seconds_rounds"], timing[PLAIN]["seconds_rounds"], strict=True)
                    ]
                )
                if args.plain
                else None,
                "fast_peak_bytes": peaks["fast"],
                "reference_peak_bytes": peaks["reference"],
                "memory_ratio": peaks["fast"] / peaks["reference"],
                "largest_fast_mask_elements": max(masks),
                "full_mask_elements": total * total,
            }
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(
                    f"{size:>5} {name:>12} N={total:>6} fast {row['fast_seconds'] * 1e3:8.1f} ms "
                    f"ref {row['reference_seconds'] * 1e3:8.1f} ms ratio {format_spread(row['time_ratio_rounds'])}  "
                    + (f"(A/A control {spread_text(row['control_ratio_spread'])})  " if args.control else "")
                    + (f"fast / plain {spread_text(row['fast_over_plain_spread'])}  " if args.plain else "")
                    + f"peak {peaks['fast'] / 2**20:6.0f} / {peaks['reference'] / 2**20:6.0f} MiB "
                    f"ratio {row['memory_ratio']:5.3f}  largest mask {max(masks):>9} "
                    f"(N*N = {total * total})",
                    flush=True,
                )
    return rows


def parse_args(argv=None):
    parser = benchmark_arg_parser(__doc__, "1024^2 only, one round")
    parser.add_argument("--sizes", type=int, nargs="+", help="image sides (default 1024 512)")
    parser.add_argument("--ids", type=int, nargs="+", default=[1, 2, 4, 8], help="pruned identity counts")
    parser.add_argument("--unpruned-ids", type=int, nargs="*", default=[4], help="unpruned identity counts")
    parser.add_argument("--control", action="store_true", help=f"also time the reference again ({CONTROL!r}): A/A")
    parser.add_argument("--plain", action="store_true", help="also time one unmasked call over all tokens")
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([1024] if args.quick else [1024, 512])
    args.rounds = args.rounds or (1 if args.quick else 7)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


if __name__ == "__main__":
    run(parse_args())
