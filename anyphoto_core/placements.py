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
otherwise. Fractions keep a layout valid when the output size changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .geometry import as_landmarks, box_to_landmarks, landmarks_to_box, validate_box

PLACEMENTS_VERSION = 1


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
        units = "fraction" if all(0.0 <= v <= 1.0 for b in boxes for v in b) else "px"
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
            x1, y1, x2, y2 = validate_box(person["box"], f"{who} box")
            out.append(Placement.from_box((x1 * sx, y1 * sy, x2 * sx, y2 * sy)))
        else:
            raise ValueError(f"{who}: needs a 'box' [x1,y1,x2,y2] or 'landmarks' [[x,y] x5]")
    return out


def placements_to_json(placements: list[Placement], width: int, height: int) -> str:
    """Serialize placements as fraction boxes (the editor's native form)."""
    people = []
    for p in placements:
        x1, y1, x2, y2 = p.box
        people.append(
            {"box": [round(x1 / width, 6), round(y1 / height, 6), round(x2 / width, 6), round(y2 / height, 6)]}
        )
    return json.dumps({"version": PLACEMENTS_VERSION, "units": "fraction", "people": people})
