"""Checks of the numbers that enter the method from outside (weights, embeddings, schedules).

Every check raises ``ValueError`` naming what was wrong and what to do; nothing non-finite or
out of convention reaches the model, where it would give a black or plausible-looking wrong
image. Torch-free: hosts call these before converting to tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .notices import IDENTITIES_OFF, Notice

#: Identity embeddings are L2-normalized (see docs/faces.md); rows whose norm falls outside this
#: range are not such embeddings (all-zero, raw recognizer output, or garbage).
EMBEDDING_NORM_RANGE = (0.5, 2.0)


def check_identity_weights(weights: Sequence[float], count: int, what: str = "person_weights") -> list[float]:
    """``count`` finite per-person weights as floats; ``ValueError`` naming the person otherwise."""
    values = list(weights)
    if len(values) != count:
        raise ValueError(f"{what}: {len(values)} weights given for {count} people; give one per person")
    out = []
    for k, value in enumerate(values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: person {k + 1}'s weight {value!r} is not a number") from None
        if not np.isfinite(number):
            raise ValueError(f"{what}: person {k + 1}'s weight is {number}; use a finite number such as 1.0")
        out.append(number)
    return out


def check_identity_embeddings(embeddings, dim: int | None = None) -> np.ndarray:
    """Validate identity embeddings ``(N, D)`` and return them as float32.

    Each row must be finite with an L2 norm within :data:`EMBEDDING_NORM_RANGE` (the project's
    embeddings are L2-normalized); ``dim`` (when given) is the adapter's embedding size.
    """
    arr = np.asarray(embeddings, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"identity embeddings must be an (N, D) array with N >= 1 people, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"identity embeddings have {arr.shape[1]} values per person; the adapter expects {dim}")
    lo, hi = EMBEDDING_NORM_RANGE
    for k, row in enumerate(arr):
        if not np.all(np.isfinite(row)):
            raise ValueError(
                f"person {k + 1}'s identity embedding contains NaN or infinite values; re-run ArcFaceEmbed "
                "on the person's photos (the embedding came from a broken model or node)"
            )
        norm = float(np.linalg.norm(row))
        if not lo <= norm <= hi:
            raise ValueError(
                f"person {k + 1}'s identity embedding has L2 norm {norm:.3g}; AnyPhoto expects L2-normalized "
                f"ArcFace embeddings (norm 1, accepted {lo:g}..{hi:g}). "
                + ("It is all zeros: " if norm == 0.0 else "")
                + "feed the output of ArcFaceEmbed, or L2-normalize the embedding first"
            )
    return arr.astype(np.float32)


def identity_window(start: float, end: float) -> list[Notice]:
    """Check the identity schedule (fractions of sampling, 0 = first step, 1 = last).

    Raises ``ValueError`` when a bound is not finite, outside [0, 1], or ``start > end``; returns
    an ``identities_off`` notice when ``start == end`` (no step runs with identities).
    """
    for name, value in (("start_percent", start), ("end_percent", end)):
        if not np.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} is {value}; it must be a fraction of the sampling between 0 and 1")
    if start > end:
        raise ValueError(f"start_percent {start} is after end_percent {end}; identities would never be applied")
    if start == end:
        return [
            Notice(
                IDENTITIES_OFF,
                f"start_percent equals end_percent ({start}): no sampling step uses the identities, so the "
                "image is plain FLUX; set start_percent below end_percent (default 0 to 1)",
            )
        ]
    return []
