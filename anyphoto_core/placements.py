"""Where each identity goes: :class:`Placement` and the placements JSON format.

Placements JSON (what the location editor widget stores, what BuildLocationCanvas and the CLI
read)::

    {"version": 1,
     "units": "fraction",            # "fraction" (0..1 of width/height, default) or "px"
     "people": [
        {"box": [x1, y1, x2, y2]},                 # a face box (see geometry.py)
        {"landmarks": [[x, y], ... 5 points]}      # or 5 ArcFace landmarks
     ]}

Person ``k`` in ``people`` is identity ``k`` (the order of the references). A bare list of boxes
``[[x1, y1, x2, y2], ...]`` is accepted too: fractions if every value is within [0, 1], pixels
if every box has a value above 1; a list that mixes the two is an error naming the odd box (a
typo such as ``1.3`` among fractions must not turn every box into pixels). Fractions keep a
layout valid when the output size changes.

Boxes must lie inside the output (fractions within [0, 1], pixels within the image); a box
outside it is an error naming the person, never a silently dropped identity.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .geometry import as_landmarks, box_to_landmarks, landmarks_to_box, validate_box
from .notices import BOXES_OVERLAP, EXTRA_BOXES, Notice

PLACEMENTS_VERSION = 1
#: Boxes overlapping more than this (intersection over the smaller box) make identities bleed:
#: the paper's known failure case for close faces.
OVERLAP_WARNING = 0.3


@dataclass(frozen=True)
class Placement:
    """Target of one identity: 5 ArcFace landmarks ``(5, 2)`` in output pixels."""

    landmarks: np.ndarray

    @classmethod
    def from_box(cls, box) -> Placement:
        return cls(box_to_landmarks(box))

    @classmethod
    def from_landmarks(cls, landmarks) -> Placement:
        return cls(as_landmarks(landmarks, "placement landmarks"))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The nominal face box of these landmarks, output pixels."""
        return landmarks_to_box(self.landmarks)


def parse_placements(text_or_obj, width: int, height: int) -> list[Placement]:
    """Parse placements JSON (string or already-decoded object) into output-pixel placements.

    Raises ``ValueError`` with the offending person and field named.
    """
    obj = text_or_obj
    if isinstance(text_or_obj, (str, bytes)):
        text = text_or_obj.strip()
        if not text:
            return []
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"placements are not valid JSON ({exc.msg} at char {exc.pos})") from None
    if isinstance(obj, list):
        boxes = [validate_box(b, f"box {i + 1}") for i, b in enumerate(obj)]
        units = box_list_units(boxes, [f"box {i + 1}" for i in range(len(boxes))])
        obj = {"version": PLACEMENTS_VERSION, "units": units, "people": [{"box": b} for b in boxes]}
    if not isinstance(obj, dict) or "people" not in obj:
        raise ValueError('placements must be {"people": [...]} or a list of boxes')
    version = obj.get("version", PLACEMENTS_VERSION)
    if version != PLACEMENTS_VERSION:
        raise ValueError(f"placements version {version} is not supported (expected {PLACEMENTS_VERSION})")
    units = obj.get("units", "fraction")
    if units not in ("fraction", "px"):
        raise ValueError(f'placements "units" must be "fraction" or "px", got {units!r}')
    sx, sy = (float(width), float(height)) if units == "fraction" else (1.0, 1.0)
    out = []
    for i, person in enumerate(obj["people"]):
        who = f"person {i + 1}"
        if not isinstance(person, dict):
            raise ValueError(f"{who}: expected an object with a 'box' or 'landmarks' field")
        if "landmarks" in person:
            lmk = as_landmarks(person["landmarks"], f"{who} landmarks") * np.array([sx, sy])
            out.append(Placement.from_landmarks(lmk))
        elif "box" in person:
            box = validate_box(person["box"], f"{who} box")
            out.append(Placement.from_box(box_to_pixels(box, units, width, height, f"{who} box")))
        else:
            raise ValueError(f"{who}: needs a 'box' [x1,y1,x2,y2] or 'landmarks' [[x,y] x5]")
    return out


def is_fraction_box(box) -> bool:
    """True when every value of ``box`` is within [0, 1] (the box reads as fractions of the output)."""
    return all(0.0 <= float(v) <= 1.0 for v in box)


def box_list_units(boxes, labels) -> str:
    """Units of a list of boxes given without units: ``"fraction"`` if every box is, ``"px"`` if none is.

    Raises ``ValueError`` naming the boxes that disagree with the rest (a list that mixes units).
    """
    fractions = [is_fraction_box(b) for b in boxes]
    if all(fractions):
        return "fraction"
    if not any(fractions):
        return "px"
    odd = [(lab, b) for lab, b, f in zip(labels, boxes, fractions, strict=True) if not f]
    names = ", ".join(f"{lab} {list(b)}" for lab, b in odd)
    raise ValueError(
        f"boxes mix fractions and pixels: {names} has a value above 1 while the other boxes are fractions of "
        "the output (0..1); fix the typo, or give every box in pixels"
    )


def box_to_pixels(box, units: str, width: int, height: int, what: str = "box") -> tuple[float, float, float, float]:
    """``box`` (validated) in output pixels; ``ValueError`` naming ``what`` if it is not inside the output.

    ``units``: ``"fraction"`` (values within [0, 1]) or ``"px"`` (within ``0..width`` x ``0..height``).
    """
    x1, y1, x2, y2 = validate_box(box, what)
    if units == "fraction":
        if not is_fraction_box((x1, y1, x2, y2)):
            raise ValueError(
                f"{what} {[x1, y1, x2, y2]} is in fractions of the output but has values outside 0..1; keep it "
                'inside the image (or give pixels with "units": "px")'
            )
        return x1 * width, y1 * height, x2 * width, y2 * height
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise ValueError(
            f"{what} {[x1, y1, x2, y2]} (pixels) lies outside the {width}x{height} output; keep it within "
            f"0..{width} x 0..{height}, or give fractions 0..1"
        )
    return x1, y1, x2, y2


def placement_notices(placements: Sequence[Placement], people: int) -> list[Notice]:
    """Warnings about a layout for ``people`` identities: unused extra boxes, boxes that overlap.

    Overlap = intersection over the smaller box above :data:`OVERLAP_WARNING` (close faces can swap
    or blend identities, the method's known failure case).
    """
    notices = []
    if len(placements) > people:
        extra = ", ".join(str(k + 1) for k in range(people, len(placements)))
        notices.append(
            Notice(
                EXTRA_BOXES,
                f"{len(placements)} boxes but {people} people: box(es) {extra} have no person and are ignored; "
                "add that person's photos or delete the box",
            )
        )
    boxes = [np.array(p.box) for p in placements[:people]]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
            if iw * ih / smaller > OVERLAP_WARNING:
                notices.append(
                    Notice(
                        BOXES_OVERLAP,
                        f"boxes of person {i + 1} and person {j + 1} overlap by {iw * ih / smaller:.0%}; close faces "
                        "can swap or blend identities (the method's known failure case); move the boxes apart",
                        person=j + 1,
                    )
                )
    return notices


def placements_to_json(placements: list[Placement], width: int, height: int) -> str:
    """Serialize placements as fraction boxes (the editor's native form)."""
    people = []
    for p in placements:
        x1, y1, x2, y2 = p.box
        people.append(
            {"box": [round(x1 / width, 6), round(y1 / height, 6), round(x2 / width, 6), round(y2 / height, 6)]}
        )
    return json.dumps({"version": PLACEMENTS_VERSION, "units": "fraction", "people": people})
