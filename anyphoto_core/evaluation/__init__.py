"""Evaluation on MultiID-Bench-format data: bench metrics, placement accuracy, CSV/JSON/HTML report.

Entry points: :func:`run_evaluation` (library, face analyzer passed in) and
``python -m anyphoto_core.evaluation`` (CLI). Metric definitions live in :mod:`anyphoto_core.evaluation.metrics`.
"""

from .analyzer import BenchFaceAnalyzer, DetectedFace, load_bench_analyzer
from .case_metrics import CaseResult, evaluate_case
from .cli import run_evaluation
from .dataset import BenchCase, load_bench

__all__ = [
    "BenchCase",
    "BenchFaceAnalyzer",
    "CaseResult",
    "DetectedFace",
    "evaluate_case",
    "load_bench",
    "load_bench_analyzer",
    "run_evaluation",
]
