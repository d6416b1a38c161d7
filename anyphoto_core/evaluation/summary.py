"""Aggregating case results: MultiID-Bench metrics the bench's way, placement strictly.

* Bench metrics (Sim(GT), Sim(Ref), CP, CLIP-I, CLIP-T, Aes): only cases the bench keeps
  (:attr:`CaseResult.bench_valid`, i.e. Sim(Ref) exists) and, per metric, only cases where the
  value exists; then :func:`anyphoto_core.evaluation.metrics.robust_summary` (IQR rule).
* Placement: every identity of every case whose references have a face and whose targets are
  known, a missing generation or face counting as a miss; plain means, no outlier removal.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from .case_metrics import CaseResult
from .metrics import robust_summary

#: (CaseResult attribute, column title) of the bench metrics, in report order.
BENCH_METRICS = (
    ("sim_gt", "Sim(GT)"),
    ("sim_ref", "Sim(Ref)"),
    ("copy_paste", "CP"),
    ("clip_i", "CLIP-I"),
    ("clip_t", "CLIP-T"),
    ("aesthetic", "Aes"),
)


def summarize_bench(results: list[CaseResult]) -> dict:
    """``{attribute: RobustSummary as dict, or None}`` over the bench-valid cases."""
    kept = [r for r in results if r.bench_valid]
    out = {}
    for key, _ in BENCH_METRICS:
        summary = robust_summary([getattr(r, key) for r in kept])
        out[key] = None if summary is None else asdict(summary)
    return out


def summarize_placement(results: list[CaseResult]) -> dict | None:
    """Strict placement aggregate, or ``None`` when no case could be scored.

    Keys: ``cases``, ``identities``, ``in_box_rate`` (identities present and in their box / all),
    ``mean_iou`` (missing = 0), ``missing_rate``, ``wrong_box_rate`` (present but inside another
    identity's box), ``mean_center_distance`` (over present identities only),
    ``duplicates_per_image``, ``strangers_per_image``, ``perfect_case_rate`` (cases with every
    identity in its box and no duplicate).
    """
    scored = [r.placement for r in results if r.placement is not None]
    if not scored:
        return None
    people = [p for pr in scored for p in pr.identities]
    present = [p.center_distance for p in people if not p.missing]
    return {
        "cases": len(scored),
        "identities": len(people),
        "in_box_rate": float(np.mean([p.in_box for p in people])),
        "mean_iou": float(np.mean([p.iou for p in people])),
        "missing_rate": float(np.mean([p.missing for p in people])),
        "wrong_box_rate": float(np.mean([p.in_box_of is not None for p in people])),
        "mean_center_distance": float(np.mean(present)) if present else None,
        "duplicates_per_image": float(np.mean([len(pr.duplicates) for pr in scored])),
        "strangers_per_image": float(np.mean([len(pr.strangers) for pr in scored])),
        "perfect_case_rate": float(np.mean([pr.n_in_box == len(pr.identities) and not pr.duplicates for pr in scored])),
    }


def summarize(results: list[CaseResult]) -> dict:
    """Counts, bench aggregates and placement aggregate of a run."""
    return {
        "cases": len(results),
        "generated_found": sum(r.generated_path is not None for r in results),
        "bench_kept": sum(r.bench_valid for r in results),
        "bench_dropped": sum(not r.bench_valid for r in results),
        "bench": summarize_bench(results),
        "placement": summarize_placement(results),
    }
