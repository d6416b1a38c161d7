"""What one generation asks for (:class:`Job`), read from a dict or a JSONL batch file.

A job, as JSON (every field optional; a field left out keeps the workflow's own value)::

    {"prompt": "two friends hiking, golden hour",
     "people": [{"photos": ["alice1.jpg", "alice2.jpg"], "box": [0.15, 0.2, 0.4, 0.55]},
                {"photos": ["bob.jpg"], "box": [0.6, 0.25, 0.85, 0.6]}],
     "units": "fraction",      # of the boxes: "fraction" (0..1) or "px"; default: inferred as placements.py does
     "seed": 42, "steps": 28, "width": 1024, "height": 768,
     "name": "hike"}           # prefix of the saved file names

Photo paths are relative to the folder of the JSONL file (or the current folder for a single job).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..placements import PLACEMENTS_VERSION
from .errors import JobError

JOB_FIELDS = ("prompt", "people", "units", "seed", "steps", "width", "height", "name")


@dataclass(frozen=True)
class Person:
    """One identity: its reference photos (local files) and its face box ``[x1, y1, x2, y2]``."""

    photos: tuple[Path, ...]
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Job:
    """Values to put into an API workflow before queueing it. ``None`` keeps the workflow's value."""

    prompt: str | None = None
    people: tuple[Person, ...] = ()
    units: str | None = None
    seed: int | None = None
    steps: int | None = None
    width: int | None = None
    height: int | None = None
    name: str | None = None

    def placements_spec(self) -> list | dict:
        """The people's boxes as placements JSON (placements.py): a bare box list when ``units`` is None
        (units inferred), else a versioned object with the units."""
        boxes = [list(p.box) for p in self.people]
        if self.units is None:
            return boxes
        return {"version": PLACEMENTS_VERSION, "units": self.units, "people": [{"box": b} for b in boxes]}

    @classmethod
    def from_dict(cls, obj, base_dir: Path | str = ".") -> Job:
        """Validate a decoded JSON job; photo paths resolve against ``base_dir``. Raises :class:`JobError`."""
        if not isinstance(obj, dict):
            raise JobError(f"a job must be a JSON object, got {type(obj).__name__}")
        unknown = sorted(set(obj) - set(JOB_FIELDS))
        if unknown:
            raise JobError(f"unknown job field(s) {unknown}; allowed: {list(JOB_FIELDS)}")
        for key in ("prompt", "name"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise JobError(f'"{key}" must be a string')
        ints = {key: _positive_int(obj, key) for key in ("seed", "steps", "width", "height")}
        units = obj.get("units")
        if units not in (None, "fraction", "px"):
            raise JobError(f'"units" must be "fraction" or "px", got {units!r}')
        people = obj.get("people") or []
        if not isinstance(people, list):
            raise JobError('"people" must be a list of {"photos": [...], "box": [x1, y1, x2, y2]}')
        return cls(
            prompt=obj.get("prompt"),
            units=units,
            name=obj.get("name"),
            people=tuple(_person(p, i, Path(base_dir)) for i, p in enumerate(people)),
            **ints,
        )


def read_jobs_jsonl(path: Path | str) -> list[Job]:
    """All jobs of a JSONL file (one JSON object per line; blank lines skipped). Errors name the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise JobError(f"cannot read jobs file {path}: {exc.strerror}") from None
    jobs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            jobs.append(Job.from_dict(json.loads(line), path.parent))
        except json.JSONDecodeError as exc:
            raise JobError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except JobError as exc:
            raise JobError(f"{path}:{number}: {exc}") from None
    if not jobs:
        raise JobError(f"{path} holds no jobs (expected one JSON object per line)")
    return jobs


def _positive_int(obj: dict, key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
        raise JobError(f'"{key}" must be a {"non-negative" if key == "seed" else "positive"} integer, got {value!r}')
    return value


def _person(obj, index: int, base_dir: Path) -> Person:
    who = f"person {index + 1}"
    if not isinstance(obj, dict) or set(obj) - {"photos", "box"}:
        raise JobError(f'{who}: expected {{"photos": [...], "box": [x1, y1, x2, y2]}}, got {obj!r}')
    photos = obj.get("photos")
    if isinstance(photos, str):
        photos = [photos]
    if not photos or not all(isinstance(p, str) for p in photos):
        raise JobError(f'{who}: "photos" must be a non-empty list of image paths')
    paths = tuple(base_dir / p for p in photos)
    for p in paths:
        if not p.is_file():
            raise JobError(f"{who}: photo {p} does not exist")
    box = obj.get("box")
    if (
        not isinstance(box, (list, tuple))
        or len(box) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    ):
        raise JobError(f'{who}: "box" must be 4 numbers [x1, y1, x2, y2], got {box!r}')
    return Person(paths, tuple(float(v) for v in box))
