"""The MiniWorld itself: its people (train / held-out split), reference banks, training scenes and
evaluation cases, every one a pure function of ``(WorldSpec, index)`` (seeded ``numpy`` generators),
so any picture can be drawn again without storing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .people import Identity, random_appearance, random_identity
from .scenes import STYLES, Scene, Spot, render_scene, sample_spots


@dataclass(frozen=True)
class WorldSpec:
    """Sizes of the world. ``size``: square scene side in pixels (multiple of 16); ``reference_size``: side
    of the reference photos (portraits)."""

    seed: int = 0
    size: int = 128
    reference_size: int = 128
    train_people: int = 300
    heldout_people: int = 60
    references: int = 6
    scenes: int = 2000


@dataclass(frozen=True)
class Person:
    name: str
    identity: Identity
    split: str  # "train" or "heldout"
    index: int


def people(spec: WorldSpec) -> list[Person]:
    """All people of the world: the first ``train_people`` are the training split."""
    rng = np.random.default_rng([spec.seed, 0])
    total = spec.train_people + spec.heldout_people
    return [
        Person(f"p{k:04d}", random_identity(rng), "train" if k < spec.train_people else "heldout", k)
        for k in range(total)
    ]


def reference_style(person: Person, k: int) -> str:
    """Style of reference photo ``k``: each bank cycles through every style from a per-person start."""
    return STYLES[(person.index + k) % len(STYLES)]


def reference_photo(spec: WorldSpec, person: Person, k: int) -> Scene:
    """Reference photo ``k`` of ``person``: a portrait (one large face), own pose, expression and style."""
    rng = np.random.default_rng([spec.seed, 1, person.index, k])
    size = spec.reference_size
    face = float(rng.uniform(0.42, 0.58)) * size
    spot = Spot(
        size / 2 + float(rng.uniform(-0.1, 0.1)) * size, size * 0.45 + float(rng.uniform(-0.05, 0.05)) * size, face
    )
    return render_scene([(person.identity, random_appearance(rng))], [spot], reference_style(person, k), size, rng)


def draw_count(rng: np.random.Generator) -> int:
    return int(rng.choice([1, 2, 3, 4], p=[0.25, 0.3, 0.25, 0.2]))


def training_scene(spec: WorldSpec, index: int, cast: list[Person]) -> tuple[Scene, list[Person]]:
    """Training scene ``index``: 1-4 distinct people of ``cast`` at random spots in a random style."""
    rng = np.random.default_rng([spec.seed, 2, index])
    count = draw_count(rng)
    chosen = [cast[int(i)] for i in rng.choice(len(cast), size=count, replace=False)]
    spots = sample_spots(count, spec.size, rng)
    style = STYLES[int(rng.integers(len(STYLES)))]
    scene = render_scene([(p.identity, random_appearance(rng)) for p in chosen], spots, style, spec.size, rng)
    return scene, chosen


@dataclass(frozen=True)
class EvalCase:
    """One held-out case: ``people`` at the spots of ``target`` (ground truth, drawn in ``target.style``),
    each with the index of a reference photo whose style differs from the target's."""

    people: tuple[Person, ...]
    references: tuple[int, ...]
    target: Scene
    seed: int


def eval_case(spec: WorldSpec, count: int, index: int, heldout: list[Person]) -> EvalCase:
    """Held-out case ``index`` with ``count`` people (deterministic)."""
    rng = np.random.default_rng([spec.seed, 3, count, index])
    chosen = [heldout[int(i)] for i in rng.choice(len(heldout), size=count, replace=False)]
    spots = sample_spots(count, spec.size, rng)
    style = STYLES[int(rng.integers(len(STYLES)))]
    target = render_scene([(p.identity, random_appearance(rng)) for p in chosen], spots, style, spec.size, rng)
    refs = []
    for p in chosen:
        options = [k for k in range(spec.references) if reference_style(p, k) != style]
        refs.append(int(options[int(rng.integers(len(options)))]))
    return EvalCase(tuple(chosen), tuple(refs), target, int(rng.integers(2**31)))
