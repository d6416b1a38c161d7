"""Spreads of the rounds a benchmark printed, also of a run that was stopped part-way.

    python benchmarks/forward_cost.py --json ... > run.jsonl      # stopped at any point
    python benchmarks/rounds_summary.py run.jsonl [--keys size]   # attention_cost: --keys size case

Reads the ``{"kind": "round"}`` JSON lines (``_common.RoundPrinter``) and prints, per group of ``--keys``
and configuration, the number of finished rounds and the ratio to the baseline and the seconds as
median [min-max].
"""

from __future__ import annotations

import argparse
import sys

from _common import spread_text, summarize_rounds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", nargs="?", default="-", help="JSON lines of a benchmark run (- = stdin)")
    parser.add_argument("--keys", nargs="+", default=["size"], help="round fields that group the rounds")
    args = parser.parse_args(argv)
    with sys.stdin if args.log == "-" else open(args.log, encoding="utf-8") as lines:
        groups = summarize_rounds(lines, args.keys)
    if not groups:
        print("no round records found", file=sys.stderr)
        return 1
    for key, configs in groups.items():
        label = " ".join(f"{k}={v}" for k, v in zip(args.keys, key, strict=True))
        for name, s in configs.items():
            print(
                f"{label} {name:>14}: {s['rounds']} rounds, ratio {spread_text(s['ratio'])}, "
                f"seconds {spread_text(s['seconds'], 4)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
