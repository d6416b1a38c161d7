"""Which detected face of a photo is the person: explicit, documented choice rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .backends import Detection
from .errors import FaceError

#: ``largest`` box area (default) | ``index``: k-th in detector order | ``left_to_right``: k-th by box
#: centre x | ``best_score``: highest detection score.
CHOICE_RULES = ("largest", "index", "left_to_right", "best_score")


@dataclass(frozen=True)
class FaceChoice:
    """How to pick the face of one photo: ``rule`` (see :data:`CHOICE_RULES`), ``index`` (0-based,
    used by ``index`` and ``left_to_right``) and ``first``: the number the user calls the first face
    (0 for a 0-based widget, 1 for the CLI's ``#K``), so errors quote the user's own numbers."""

    rule: str = "largest"
    index: int = 0
    first: int = 0


def choose_face(
    detections: Sequence[Detection], rule: str = "largest", index: int = 0, what: str = "photo", first: int = 0
) -> Detection:
    """Pick one detection by ``rule`` (``index`` is used by ``index`` and ``left_to_right``).

    ``first``: how the user numbers faces (0 or 1), for the error message only.
    """
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
        order = "in detector order" if rule == "index" else "counted from the left"
        raise FaceError(
            f"{what}: face {index + first} ({order}, the first face is {first}) was asked for, but only "
            f"{len(ordered)} face(s) were found (valid: {first}..{len(ordered) - 1 + first})"
        )
    return ordered[index]
