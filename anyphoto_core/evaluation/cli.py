"""``python -m anyphoto_core.evaluation``: MultiID-Bench metrics + placement accuracy over a folder of generations.

Example::

    python -m anyphoto_core.evaluation --bench MultiID-Bench/p2.json --generated out/p2 \\
        --out eval/p2 --models /path/to/models

writes ``eval/p2/results.csv``, ``results.json`` and ``report.html``. See ``docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .analyzer import BENCH_DET_THRESH, BENCH_FACE_PACK, BenchFaceAnalyzer, load_bench_analyzer
from .case_metrics import CaseResult, evaluate_case
from .dataset import load_bench
from .quality import QualityScorers, load_quality_scorers
from .report import write_csv, write_html, write_json
from .summary import summarize

log = logging.getLogger(__name__)


def run_evaluation(
    bench,
    generated,
    out_dir,
    analyzer: BenchFaceAnalyzer,
    quality: QualityScorers | None = None,
    limit: int | None = None,
    data_root=None,
    match_threshold: float = 0.2,
    iou_threshold: float = 0.3,
) -> dict:
    """Evaluate every case (the first ``limit``), write the three outputs, return the summary dict."""
    generated = Path(generated)
    if not generated.is_dir():
        raise ValueError(f"generations folder {generated} does not exist")
    cases = load_bench(bench, data_root)
    if limit is not None:
        cases = cases[: max(0, limit)]
    quality = quality or QualityScorers(notes=["CLIP-I/CLIP-T/Aes: n/a — quality scoring was not requested"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[CaseResult] = []
    for i, case in enumerate(cases):
        log.info("[%d/%d] %s", i + 1, len(cases), case.id)
        results.append(evaluate_case(case, generated, analyzer, quality, match_threshold, iou_threshold))
    summary = summarize(results)
    settings = {
        "bench": str(bench),
        "generated": str(generated),
        "limit": limit,
        "match_threshold": match_threshold,
        "iou_threshold": iou_threshold,
    }
    write_csv(results, out_dir / "results.csv")
    write_json(results, summary, settings, quality.notes, out_dir / "results.json")
    write_html(results, summary, settings, quality.notes, out_dir)
    return summary


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m anyphoto_core.evaluation", description=__doc__.splitlines()[0])
    ap.add_argument("--bench", required=True, help="MultiID-Bench-format JSON list of cases (e.g. p2.json)")
    ap.add_argument("--generated", required=True, help="folder with <id>.png|.jpg|.jpeg|.webp or <id>/out.jpg")
    ap.add_argument("--out", required=True, help="output folder for results.csv, results.json, report.html")
    ap.add_argument("--models", help="models root: insightface/models/<pack>/, clip-vit-base-patch16/, ...")
    ap.add_argument("--limit", type=int, help="evaluate only the first N cases")
    ap.add_argument("--data-root", help="folder the bench's relative paths start from (default: the bench file's)")
    ap.add_argument(
        "--face-pack", default=BENCH_FACE_PACK, help=f"insightface pack (default {BENCH_FACE_PACK}, as the bench)"
    )
    ap.add_argument("--det-thresh", type=float, default=BENCH_DET_THRESH, help="face detection threshold (bench: 0.45)")
    ap.add_argument(
        "--match-threshold",
        type=float,
        default=0.2,
        help="placement: min cosine(reference, face) for a face to count as that identity",
    )
    ap.add_argument("--iou-threshold", type=float, default=0.3, help="placement: IoU that counts as in the box")
    ap.add_argument("--no-quality", action="store_true", help="skip CLIP-I/CLIP-T/Aes (reported as n/a)")
    return ap


def main(argv=None, analyzer: BenchFaceAnalyzer | None = None) -> int:
    """CLI entry. ``analyzer``: inject a face analyzer (tests); default loads ``--face-pack`` from ``--models``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if analyzer is None:
            if not args.models:
                raise ValueError(
                    "--models is required to load the face models (<models>/insightface/models/"
                    f"{args.face_pack}/*.onnx)"
                )
            analyzer = load_bench_analyzer(args.models, args.face_pack, args.det_thresh)
        quality = None if args.no_quality else load_quality_scorers(args.models)
        summary = run_evaluation(
            args.bench,
            args.generated,
            args.out,
            analyzer,
            quality,
            args.limit,
            args.data_root,
            args.match_threshold,
            args.iou_threshold,
        )
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in quality.notes if quality else []:
        print(f"note: {note}")
    bench = summary["bench"]
    line = ", ".join(f"{k}={'n/a' if v is None else format(v['mean'], '.4f')}" for k, v in bench.items())
    print(f"{summary['bench_kept']}/{summary['cases']} cases kept by the bench rule: {line}")
    if summary["placement"]:
        p = summary["placement"]
        print(
            f"placement: {p['in_box_rate']:.1%} of {p['identities']} identities in their box, "
            f"mean IoU {p['mean_iou']:.3f}, missing {p['missing_rate']:.1%}"
        )
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0
