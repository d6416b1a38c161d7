"""Warnings the user must see, returned (not only logged) by the core.

A :class:`Notice` is a structured warning: something AnyPhoto did that the user did not ask for
in so many words (a photo skipped, a layout face dropped, an extra box unused, two boxes that
overlap, identities switched off). Core functions return them next to their result; each host
shows them where the user looks: the CLI on stderr, the ComfyUI nodes in the UI. Nothing here
imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Notice kinds (stable identifiers a host may branch on).
PHOTO_SKIPPED = "photo_skipped"
LAYOUT_FACES_DROPPED = "layout_faces_dropped"
EXTRA_BOXES = "extra_boxes"
BOXES_OVERLAP = "boxes_overlap"
IDENTITIES_OFF = "identities_off"
PHOTO_LOOKS_TRUNCATED = "photo_looks_truncated"
RECOGNIZER_MISMATCH = "recognizer_mismatch"


@dataclass(frozen=True)
class Notice:
    """One warning for the user: ``kind`` (one of the constants above), ``message`` (a full
    sentence saying what happened and what to do), ``person`` (1-based, or None when it concerns
    no single person)."""

    kind: str
    message: str
    person: int | None = None

    def __str__(self) -> str:
        return self.message


def format_notices(notices: Iterable[Notice]) -> list[str]:
    """``["WARNING: <message>", ...]``: one line per notice, as the CLI prints them."""
    return [f"WARNING: {n.message}" for n in notices]
