"""MultiID-Bench identity metrics, their aggregation rule, and placement accuracy.

Pure numpy/scipy on face embeddings and face boxes; no model is loaded here.

* Embeddings are float arrays of shape ``(N, D)`` (N faces, D = 512 for ArcFace) or ``(D,)`` for
  one face, raw or L2-normalised (every metric normalises itself).
* Boxes are ``(x1, y1, x2, y2)`` pixels of one image (see :mod:`anyphoto_core.geometry`).

The MultiID-Bench functions reproduce WithAnyone's published implementation
(``MultiID-Bench/metrics/arcface_metric.py`` and ``eval.py`` at Doby-Xu/WithAnyone@996d152):
faces are matched by Hungarian assignment on cosine similarity (never by position), rectangular
similarity matrices are allowed (only ``min(n_a, n_b)`` pairs are scored), and a sample whose
faces cannot be compared yields ``None`` (the bench drops it). Placement accuracy
(:func:`placement_accuracy`) is AnyPhoto's own strict, position-aware addition; see
``docs/evaluation.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..geometry import validate_box

#: Norm floor of :func:`cosine_matrix`, as ``torch.nn.functional.cosine_similarity`` (eps=1e-8).
COSINE_EPS = 1e-8


def _as_embeddings(x, what: str) -> np.ndarray:
    """``(N, D)`` float64 from ``(N, D)``, ``(D,)`` or an empty list; ``ValueError`` otherwise."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, arr.shape[-1] if arr.ndim == 2 else 0)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{what} must be an (N, D) or (D,) embedding array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contain NaN or infinite values")
    return arr


def cosine_matrix(a, b) -> np.ndarray:
    """Cosine similarity of every row of ``a`` ``(Na, D)`` with every row of ``b`` ``(Nb, D)``.

    Each norm is floored at :data:`COSINE_EPS`, as torch's ``cosine_similarity`` which the bench
    uses. Returns ``(Na, Nb)`` float64 in [-1, 1].
    """
    a = _as_embeddings(a, "first embeddings")
    b = _as_embeddings(b, "second embeddings")
    if a.shape[0] and b.shape[0] and a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding sizes differ: {a.shape[1]} vs {b.shape[1]}; use the same face recognizer")
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), COSINE_EPS)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), COSINE_EPS)
    return an @ bn.T


def cosine(a, b) -> float:
    """Cosine similarity of two ``(D,)`` embeddings."""
    return float(cosine_matrix(a, b)[0, 0])


def _assign(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian assignment maximising total similarity (``linear_sum_assignment`` on ``-sim``)."""
    rows, cols = linear_sum_assignment(-sim)
    return rows, cols


def match_faces(a, b) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of faces ``a`` ``(Na, D)`` to faces ``b`` ``(Nb, D)`` by cosine.

    Returns ``(pairs, similarities)``: ``pairs`` is ``(K, 2)`` int, rows ``(i, j)`` meaning
    ``a[i]`` matched ``b[j]``, sorted by ``i``, ``K = min(Na, Nb)``; ``similarities`` is ``(K,)``.
    Faces left over on the larger side are unmatched.
    """
    sim = cosine_matrix(a, b)
    if sim.size == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    rows, cols = _assign(sim)
    return np.stack([rows, cols], axis=1).astype(np.int64), sim[rows, cols]


def mean_matched_similarity(a, b) -> float | None:
    """Mean cosine of the Hungarian-matched pairs of ``a`` and ``b``; ``None`` if either is empty."""
    pairs, sims = match_faces(a, b)
    return float(np.mean(sims)) if len(pairs) else None


def sim_gt(gen, gt) -> float | None:
    """Sim(GT): all generated faces ``(Ng, D)`` vs all ground-truth faces ``(Nt, D)``.

    Mean of the Hungarian-matched cosines; ``None`` (sample dropped) if either has no face.
    """
    return mean_matched_similarity(gen, gt)


def sim_ref(gen, refs) -> float | None:
    """Sim(Ref): all generated faces ``(Ng, D)`` vs one embedding per reference image ``(Nr, D)``.

    Mean of the Hungarian-matched cosines; ``None`` if either side is empty (the bench also
    returns ``None`` when any reference image has no detectable face: the caller passes no refs).
    """
    return mean_matched_similarity(gen, refs)


def non_matched(a, b) -> float | None:
    """Mean similarity of the pairs *not* in the Hungarian assignment (a leakage indicator).

    Includes the rows/columns left unmatched in a rectangular matrix, as the bench does.
    ``None`` when there is no such pair (e.g. one face on each side) or a side is empty.
    """
    sim = cosine_matrix(a, b)
    if sim.size == 0:
        return None
    rows, cols = _assign(sim)
    off = np.ones_like(sim, dtype=bool)
    off[rows, cols] = False
    return float(np.mean(sim[off])) if off.any() else None


def copy_paste_score(gen, gt, ref, eps: float = 1e-6) -> float:
    """Copy-paste score M_CP of one face: ``(theta(g, t) - theta(g, r)) / theta(t, r)``.

    ``gen``, ``gt``, ``ref`` are ``(D,)`` embeddings of the generated, ground-truth and
    reference face of one identity. Each is normalised as ``x / (||x|| + eps)``, cosines are
    clipped to [-1, 1], ``theta = arccos(cos)`` (radians). +1: the generation equals the
    reference (copy-paste); -1: it equals the GT. When ``theta(t, r) < eps`` (reference and GT
    are the same face) the score is defined as 0, as in the bench's ``copy_geo``; the WithAnyone
    paper writes the denominator as ``max(theta(t, r), eps)``, which would instead give a huge
    value there, so the code's rule is the one reproduced. Note that the ``+ eps`` normalisation
    makes the angle of a vector with itself about ``sqrt(4 * eps / ||x||)`` (0.002 rad for unit
    vectors), so the zero rule only fires for identical GT and reference embeddings of huge norm;
    identical ones give 0 anyway (equal numerator terms). Reproduced as is.
    """

    def unit(x, what):
        v = _as_embeddings(x, what)
        if v.shape[0] != 1:
            raise ValueError(f"{what} must be one (D,) embedding, got {v.shape[0]} rows")
        return v[0] / (np.linalg.norm(v[0]) + eps)

    g, t, r = unit(gen, "generated embedding"), unit(gt, "GT embedding"), unit(ref, "reference embedding")
    if not (g.shape == t.shape == r.shape):
        raise ValueError(f"embedding sizes differ: {g.shape[0]}, {t.shape[0]}, {r.shape[0]}")

    def angle(a, b):
        return float(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0)))

    theta_gt, theta_gr, theta_tr = angle(g, t), angle(g, r), angle(t, r)
    if theta_tr < eps:
        return 0.0
    return (theta_gt - theta_gr) / theta_tr


def copy_paste_scores(gen, gt, refs, eps: float = 1e-6) -> np.ndarray | None:
    """Per-face M_CP of a multi-person sample, as the bench's ``calculate_copy_geo_multi_person``.

    ``gen`` ``(N, D)`` generated faces, ``gt`` ``(N, D)`` GT faces, ``refs`` ``(N, D)`` one per
    reference. Requires equal, non-zero counts, else ``None`` (sample skipped). Each generated
    face is Hungarian-matched to a GT face and, separately, to a reference; returns ``(N,)``
    scores in generated-face order. The per-sample value is their mean.
    """
    g = _as_embeddings(gen, "generated embeddings")
    t = _as_embeddings(gt, "GT embeddings")
    r = _as_embeddings(refs, "reference embeddings")
    if g.shape[0] == 0 or not (g.shape[0] == t.shape[0] == r.shape[0]):
        return None
    to_gt = dict(match_faces(g, t)[0].tolist())
    to_ref = dict(match_faces(g, r)[0].tolist())
    return np.array([copy_paste_score(g[i], t[to_gt[i]], r[to_ref[i]], eps) for i in range(g.shape[0])])


@dataclass(frozen=True)
class RobustSummary:
    """Aggregate of one metric over samples, computed as MultiID-Bench's ``_compute_statistics``.

    ``mean`` is the reported value. ``fallback`` is True when the IQR rule would have removed
    more than half of the values; then, as in the bench, ``mean`` is the median of all values,
    ``std`` is their IQR, ``min``/``max`` are their 5th/95th percentiles and ``removed`` is 0.
    """

    mean: float
    std: float
    min: float
    max: float
    median: float
    q1: float
    q3: float
    count: int
    removed: int
    fallback: bool


def robust_summary(values, k: float = 1.5) -> RobustSummary | None:
    """IQR outlier removal then statistics, exactly as the bench (``method="iqr"``, ``threshold=1.5``).

    Keeps values within ``[Q1 - k*IQR, Q3 + k*IQR]`` (quartiles by ``np.percentile``, linear
    interpolation, inclusive bounds); if fewer than half the values are kept, falls back to
    median-based statistics (see :class:`RobustSummary`). ``std`` is the population std
    (``np.std``). ``None`` values are dropped first (as the bench never collects them);
    returns ``None`` when nothing is left.
    """
    arr = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return None
    q1, q3 = np.percentile(arr, [25, 75])
    iqr = q3 - q1
    kept = arr[(arr >= q1 - k * iqr) & (arr <= q3 + k * iqr)]
    if len(kept) < arr.size * 0.5:
        p5, p95 = np.percentile(arr, [5, 95])
        med = float(np.median(arr))
        return RobustSummary(med, float(q3 - q1), float(p5), float(p95), med, float(q1), float(q3), arr.size, 0, True)
    kq1, kq3 = np.percentile(kept, [25, 75])
    return RobustSummary(
        float(np.mean(kept)),
        float(np.std(kept)),
        float(np.min(kept)),
        float(np.max(kept)),
        float(np.median(kept)),
        float(kq1),
        float(kq3),
        int(arr.size),
        int(arr.size - kept.size),
        False,
    )


def robust_mean(values, k: float = 1.5) -> float | None:
    """The bench's reported mean: :func:`robust_summary` ``.mean`` (``None`` if no values)."""
    summary = robust_summary(values, k)
    return None if summary is None else summary.mean


# --------------------------------------------------------------------------------------------
# Placement accuracy (AnyPhoto; not part of MultiID-Bench)


def box_iou(a, b) -> float:
    """Intersection over union of two boxes ``(x1, y1, x2, y2)``, in [0, 1]."""
    ax1, ay1, ax2, ay2 = validate_box(a, "first box")
    bx1, by1, bx2, by2 = validate_box(b, "second box")
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union


def _center(box) -> np.ndarray:
    x1, y1, x2, y2 = validate_box(box)
    return np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0])


def box_center_distance(face_box, target_box) -> float:
    """Distance between box centres divided by the target box's diagonal (unitless)."""
    x1, y1, x2, y2 = validate_box(target_box, "target box")
    return float(np.linalg.norm(_center(face_box) - _center(target_box)) / np.hypot(x2 - x1, y2 - y1))


def is_in_box(face_box, target_box, iou_threshold: float = 0.3) -> bool:
    """A face is in its box when ``IoU >= iou_threshold`` or its box centre lies inside the target."""
    if box_iou(face_box, target_box) >= iou_threshold:
        return True
    cx, cy = _center(face_box)
    x1, y1, x2, y2 = validate_box(target_box, "target box")
    return bool(x1 <= cx <= x2 and y1 <= cy <= y2)


@dataclass(frozen=True)
class IdentityPlacement:
    """Placement of identity ``identity`` (0-based, the order of references and target boxes).

    ``face``: index of the generated face credited to it, ``None`` when missing. ``similarity``:
    cosine of its reference with that face; for a missing identity the best cosine with any
    generated face (``None`` when the image has no face).
    ``iou``/``in_box`` are 0/False when missing; ``center_distance`` (centre distance over the
    target-box diagonal) is ``None`` then. ``in_box_of``: the other identity whose target box
    holds the credited face instead of its own (a swap or drift), else ``None``.
    """

    identity: int
    face: int | None
    similarity: float | None
    iou: float
    center_distance: float | None
    in_box: bool
    in_box_of: int | None

    @property
    def missing(self) -> bool:
        return self.face is None


@dataclass(frozen=True)
class PlacementResult:
    """Placement accuracy of one generated image.

    ``duplicates``: generated faces credited to no identity whose best-matching reference
    (cosine >= threshold) belongs to an identity, as ``(face index, identity)`` pairs.
    ``strangers``: uncredited faces that match no reference (extra people).
    """

    identities: tuple[IdentityPlacement, ...]
    duplicates: tuple[tuple[int, int], ...]
    strangers: tuple[int, ...]

    @property
    def n_missing(self) -> int:
        return sum(p.missing for p in self.identities)

    @property
    def n_in_box(self) -> int:
        return sum(p.in_box for p in self.identities)

    @property
    def mean_iou(self) -> float:
        """Mean IoU over all identities, missing ones counting 0."""
        return float(np.mean([p.iou for p in self.identities]))

    @property
    def in_box_rate(self) -> float:
        """Fraction of identities whose face is present and in its box."""
        return self.n_in_box / len(self.identities)


def placement_accuracy(
    target_boxes,
    ref_embeddings,
    face_boxes,
    face_embeddings,
    match_threshold: float = 0.2,
    iou_threshold: float = 0.3,
) -> PlacementResult:
    """Is each identity present, once, and inside its own target box?

    ``target_boxes`` ``(K, 4)`` and ``ref_embeddings`` ``(K, D)``: identity k's box in the
    generated image's pixels and its reference embedding. ``face_boxes`` ``(M, 4)`` and
    ``face_embeddings`` ``(M, D)``: the faces detected in the generated image.

    1. Identities are assigned one-to-one to generated faces by Hungarian matching on
       cosine(ref, face), where only pairs with cosine >= ``match_threshold`` count: the
       assignment credits as many identities as possible, then maximises total similarity.
    2. Identity k is *found* when it is credited a face; otherwise it is *missing* (IoU 0, not
       in box) — no leniency, unlike the bench which drops samples it cannot score.
    3. A found identity is *in box* when :func:`is_in_box` holds for its own target box.
    4. Every face not credited to an identity is a *duplicate* of its best-matching identity if
       that cosine is >= ``match_threshold`` (that identity then always has a credited face),
       else a *stranger*.
    """
    targets = np.asarray(target_boxes, dtype=np.float64).reshape(-1, 4)
    refs = _as_embeddings(ref_embeddings, "reference embeddings")
    if targets.shape[0] == 0:
        raise ValueError("placement accuracy needs at least one identity (target box + reference)")
    if refs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"{targets.shape[0]} target boxes but {refs.shape[0]} reference embeddings; "
            "give one box per reference, in the same order"
        )
    boxes = np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4)
    faces = _as_embeddings(face_embeddings, "generated face embeddings")
    if boxes.shape[0] != faces.shape[0]:
        raise ValueError(f"{boxes.shape[0]} generated face boxes but {faces.shape[0]} embeddings")

    sim = cosine_matrix(refs, faces)
    credited: dict[int, int] = {}
    if sim.size:
        # Pairs below the threshold cost more than any set of valid pairs can gain, so the
        # assignment first maximises the number of credited identities, then total similarity.
        valid = sim >= match_threshold
        rows, cols = _assign(np.where(valid, sim, -2.0 * (1 + min(sim.shape))))
        credited = {int(k): int(j) for k, j in zip(rows, cols, strict=True) if valid[k, j]}

    identities = []
    for k in range(targets.shape[0]):
        j = credited.get(k)
        if j is None:
            closest = float(sim[k].max()) if faces.shape[0] else None
            identities.append(IdentityPlacement(k, None, closest, 0.0, None, False, None))
            continue
        face_box = boxes[j]
        in_box = is_in_box(face_box, targets[k], iou_threshold)
        other = None
        if not in_box:
            others = [m for m in range(targets.shape[0]) if m != k and is_in_box(face_box, targets[m], iou_threshold)]
            other = others[0] if others else None
        identities.append(
            IdentityPlacement(
                k,
                j,
                float(sim[k, j]),
                box_iou(face_box, targets[k]),
                box_center_distance(face_box, targets[k]),
                in_box,
                other,
            )
        )

    taken = set(credited.values())
    duplicates, strangers = [], []
    for j in range(faces.shape[0]):
        if j in taken:
            continue
        best = int(np.argmax(sim[:, j]))
        if sim[best, j] >= match_threshold:
            duplicates.append((j, best))
        else:
            strangers.append(j)
    return PlacementResult(tuple(identities), tuple(duplicates), tuple(strangers))
