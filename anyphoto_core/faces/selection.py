"""Which detected face of a photo is the person: explicit, documented choice rules."""

from __future__ import annotations

from collections.abc import Sequence

from .backends import Detection
from .errors import FaceError

#: ``largest`` box area (default) | ``index``: k-th in detector order | ``left_to_right``: k-th by box
#: centre x | ``best_score``: highest detection score.
CHOICE_RULES = ("largest", "index", "left_to_right", "best_score")


def choose_face(
    detections: Sequence[Detection], rule: str = "largest", index: int = 0, what: str = "photo"
) -> Detection:
    """Pick one detection by ``rule`` (``index`` is used by ``index`` and ``left_to_right``)."""
    if rule not in CHOICE_RULES:
        raise FaceError(f"unknown face choice rule {rule!r}; use one of {', '.join(CHOICE_RULES)}")
    if not detections:
        raise FaceError(f"{what}: no faces to choose from")
    if rule == "largest":
        return max(detections, key=lambda d: d.area)
    if rule == "best_score":
        return max(detections, key=lambda d: d.score)
    ordered = list(detections) if rule == "index" else sorted(detections, key=lambda d: d.center_x)
    if not 0 <= index < len(ordered):
        raise FaceError(
            f"{what}: face index {index} ({rule}) asked for, but only {len(ordered)} face(s) were found "
            f"(valid: 0..{len(ordered) - 1})"
        )
    return ordered[index]
