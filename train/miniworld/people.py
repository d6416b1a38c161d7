"""MiniWorld people: an identity (fixed attribute vector) and one photo's appearance, drawn as a sprite.

A person is drawn in a canonical ``SPRITE x SPRITE`` RGBA sprite (face centre at :data:`FACE_CENTRE`,
face half-height :data:`FACE_HALF_HEIGHT` pixels) with its exact 5 landmarks in sprite pixels
(ArcFace order: image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth
corner). :mod:`train.miniworld.scenes` places sprites in scenes with a similarity transform and maps
the landmarks through the same transform.

*Identity* (:class:`Identity`, drawn once per person from a seed) is a combination of many
attributes; no single one names a person, and colours are only some of them (styles change colours).
*Appearance* (:class:`Appearance`, drawn per photo) is pose (roll, yaw), expression, lighting and
clothing; it never depends on the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SPRITE = 256
FACE_CENTRE = (128.0, 118.0)
FACE_HALF_HEIGHT = 66.0

SKIN_TONES = [(255, 224, 196), (241, 194, 160), (224, 172, 128), (198, 134, 90), (141, 85, 54), (92, 56, 36)]
HAIR_COLOURS = [
    (20, 18, 18),
    (70, 42, 25),
    (125, 80, 45),
    (220, 190, 110),
    (170, 60, 25),
    (150, 150, 150),
    (240, 240, 235),
]
EYE_COLOURS = [(90, 55, 30), (50, 110, 200), (60, 140, 70), (120, 125, 135), (150, 110, 50)]
HAIR_STYLES = ("bald", "short", "long", "spiky", "bun", "fringe", "mohawk")
GLASSES = ("none", "round", "square")
BEARDS = ("none", "moustache", "goatee", "full")
MOLES = ("none", "left", "right", "chin")
EXPRESSIONS = ("neutral", "smile", "open", "frown")


@dataclass(frozen=True)
class Identity:
    """One person's fixed attributes (all indices or numbers in sprite units)."""

    squareness: float  # superellipse exponent of the face outline: 2 = ellipse, < 2 squarer
    width: float  # face half-width / half-height
    chin: float  # 0 = round jaw, 0.4 = pointed chin
    skin: int
    hair_colour: int
    hair_style: int
    eye_colour: int
    eye_size: float
    eye_spacing: float  # eye x offset / face half-width
    brow_thickness: float
    brow_angle: float  # degrees, positive = outer end down
    nose: int  # 0 triangle, 1 round, 2 long
    nose_size: float
    mouth_width: float  # / face half-width
    glasses: int
    beard: int
    ears: float
    mole: int

    def vector(self) -> np.ndarray:
        """The attributes as a float vector (for distances between people)."""
        return np.array([getattr(self, f) for f in self.__dataclass_fields__], dtype=np.float64)


@dataclass(frozen=True)
class Appearance:
    """One photo of a person: pose, expression, lighting and clothing."""

    roll: float  # degrees
    yaw: float  # -1..1: feature shift towards one side
    expression: int
    light_angle: float  # radians
    light_strength: float  # 0..0.5
    shirt: tuple[int, int, int]


def random_identity(rng: np.random.Generator) -> Identity:
    return Identity(
        squareness=float(rng.choice([1.3, 2.0, 2.8])),
        width=float(rng.choice([0.72, 0.82, 0.92])),
        chin=float(rng.choice([0.0, 0.2, 0.4])),
        skin=int(rng.integers(len(SKIN_TONES))),
        hair_colour=int(rng.integers(len(HAIR_COLOURS))),
        hair_style=int(rng.integers(len(HAIR_STYLES))),
        eye_colour=int(rng.integers(len(EYE_COLOURS))),
        eye_size=float(rng.choice([7.0, 10.0])),
        eye_spacing=float(rng.choice([0.34, 0.42])),
        brow_thickness=float(rng.choice([3.0, 6.0, 10.0])),
        brow_angle=float(rng.choice([-14.0, 0.0, 14.0])),
        nose=int(rng.integers(3)),
        nose_size=float(rng.choice([0.8, 1.25])),
        mouth_width=float(rng.choice([0.22, 0.32, 0.42])),
        glasses=int(rng.choice(3, p=[0.5, 0.25, 0.25])),
        beard=int(rng.choice(4, p=[0.55, 0.15, 0.15, 0.15])),
        ears=float(rng.choice([0.12, 0.2])),
        mole=int(rng.choice(4, p=[0.55, 0.15, 0.15, 0.15])),
    )


def random_appearance(rng: np.random.Generator, max_roll: float = 18.0) -> Appearance:
    return Appearance(
        roll=float(rng.uniform(-max_roll, max_roll)),
        yaw=float(rng.uniform(-0.6, 0.6)),
        expression=int(rng.integers(len(EXPRESSIONS))),
        light_angle=float(rng.uniform(0, 2 * np.pi)),
        light_strength=float(rng.uniform(0.0, 0.45)),
        shirt=tuple(int(v) for v in rng.integers(30, 230, 3)),
    )


def _outline(ident: Identity, cx: float, cy: float) -> list[tuple[float, float]]:
    """Face outline polygon: superellipse, narrowed towards the chin."""
    b = FACE_HALF_HEIGHT
    a = b * ident.width
    pts = []
    for th in np.linspace(0, 2 * np.pi, 96, endpoint=False):
        c, s = np.cos(th), np.sin(th)
        e = 2.0 / ident.squareness
        x = a * np.sign(c) * abs(c) ** e
        y = b * np.sign(s) * abs(s) ** e
        if y > 0:
            x *= 1.0 - ident.chin * (y / b) ** 2
        pts.append((cx + x, cy + y))
    return pts


def _darker(colour, k: float = 0.6) -> tuple[int, int, int]:
    return tuple(int(c * k) for c in colour)


def draw_person(ident: Identity, look: Appearance) -> tuple[Image.Image, np.ndarray]:
    """The person as an upright RGBA sprite (no roll; the scene applies roll and scale) and its
    landmarks ``(5, 2)`` in sprite pixels."""
    img = Image.new("RGBA", (SPRITE, SPRITE), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    cx, cy = FACE_CENTRE
    b = FACE_HALF_HEIGHT
    a = b * ident.width
    skin = SKIN_TONES[ident.skin]
    hair = HAIR_COLOURS[ident.hair_colour]
    style = HAIR_STYLES[ident.hair_style]
    shift = look.yaw * a * 0.3  # features move towards the turned side

    # shoulders and neck
    d.rounded_rectangle([cx - 100, cy + b + 18, cx + 100, SPRITE + 40], radius=50, fill=look.shirt + (255,))
    d.rectangle([cx - a * 0.35, cy + b * 0.6, cx + a * 0.35, cy + b + 30], fill=_darker(skin, 0.85) + (255,))
    # hair behind the head
    if style == "long":
        d.rounded_rectangle([cx - a - 22, cy - b - 16, cx + a + 22, cy + b + 40], radius=40, fill=hair + (255,))
    # ears
    for side in (-1, 1):
        ex = cx + side * (a - 2) - shift * 0.5
        d.ellipse([ex - b * ident.ears, cy - 14, ex + b * ident.ears, cy + 22], fill=_darker(skin, 0.9) + (255,))
    d.polygon(_outline(ident, cx, cy), fill=skin + (255,))
    # hair on top
    if style in ("short", "fringe", "spiky", "mohawk", "bun", "long"):
        top = [cx - a - 4, cy - b - 12, cx + a + 4, cy - b * 0.1]
        if style != "mohawk":
            d.chord(top, 180, 360, fill=hair + (255,))
        if style == "fringe":
            d.rectangle([cx - a * 0.85, cy - b * 0.62, cx + a * 0.85, cy - b * 0.38], fill=hair + (255,))
        if style == "spiky":
            for k in range(5):
                x0 = cx - a + (k + 0.5) * 2 * a / 5
                d.polygon([(x0 - 14, cy - b * 0.7), (x0, cy - b - 34), (x0 + 14, cy - b * 0.7)], fill=hair + (255,))
        if style == "mohawk":
            d.rectangle([cx - 12, cy - b - 30, cx + 12, cy - b * 0.5], fill=hair + (255,))
        if style == "bun":
            d.ellipse([cx - 24, cy - b - 46, cx + 24, cy - b + 2], fill=hair + (255,))
    # eyes
    eye_dx = ident.eye_spacing * a
    eye_y = cy - b * 0.12
    open_k = {"neutral": 1.0, "smile": 0.6, "open": 1.25, "frown": 0.8}[EXPRESSIONS[look.expression]]
    eyes = []
    for side in (-1, 1):
        ex = cx + side * eye_dx + shift
        eyes.append((ex, eye_y))
        r = ident.eye_size
        d.ellipse([ex - r * 1.5, eye_y - r * open_k, ex + r * 1.5, eye_y + r * open_k], fill=(250, 250, 250, 255))
        d.ellipse(
            [ex - r * 0.8, eye_y - r * 0.8 * open_k, ex + r * 0.8, eye_y + r * 0.8 * open_k],
            fill=EYE_COLOURS[ident.eye_colour] + (255,),
        )
        d.ellipse([ex - r * 0.35, eye_y - r * 0.35, ex + r * 0.35, eye_y + r * 0.35], fill=(10, 10, 10, 255))
        # brow: outer end lower for positive angle; raised for an open mouth
        lift = 6.0 if EXPRESSIONS[look.expression] == "open" else 0.0
        by = eye_y - r * 1.4 - 10 - lift
        dy = np.tan(np.radians(ident.brow_angle)) * 16
        if EXPRESSIONS[look.expression] == "frown":
            dy -= 5
        d.line(
            [(ex - side * 16, by), (ex + side * 16, by + dy)],
            fill=_darker(hair, 0.8) + (255,),
            width=int(ident.brow_thickness),
        )
    # glasses
    if GLASSES[ident.glasses] != "none":
        for ex, ey in eyes:
            box = [ex - 20, ey - 16, ex + 20, ey + 16]
            if GLASSES[ident.glasses] == "round":
                d.ellipse(box, outline=(25, 25, 25, 255), width=5)
            else:
                d.rectangle(box, outline=(25, 25, 25, 255), width=5)
        d.line([(eyes[0][0] + 20, eye_y), (eyes[1][0] - 20, eye_y)], fill=(25, 25, 25, 255), width=4)
    # nose
    nose = (cx + shift * 1.4, cy + b * 0.3)
    ns = ident.nose_size
    nose_col = _darker(skin, 0.7) + (255,)
    if ident.nose == 0:
        d.polygon(
            [(nose[0], nose[1] - 26 * ns), (nose[0] - 11 * ns, nose[1] + 3), (nose[0] + 11 * ns, nose[1] + 3)],
            fill=nose_col,
        )
    elif ident.nose == 1:
        d.ellipse([nose[0] - 10 * ns, nose[1] - 8 * ns, nose[0] + 10 * ns, nose[1] + 6 * ns], fill=nose_col)
    else:
        d.line([(nose[0], nose[1] - 30 * ns), (nose[0], nose[1])], fill=nose_col, width=int(7 * ns))
        d.line([(nose[0] - 8 * ns, nose[1]), (nose[0] + 8 * ns, nose[1])], fill=nose_col, width=5)
    # beard (under the mouth)
    mouth_y = cy + b * 0.6
    mw = ident.mouth_width * a
    beard = BEARDS[ident.beard]
    beard_col = _darker(hair, 0.9) + (255,)
    if beard == "full":
        lower = [p for p in _outline(ident, cx, cy) if p[1] > cy + b * 0.25]
        d.polygon(lower + [(cx + a * 0.7, cy + b * 0.25)], fill=beard_col)
    elif beard == "goatee":
        d.ellipse([cx + shift - 16, mouth_y + 6, cx + shift + 16, cy + b * 1.02], fill=beard_col)
    if beard in ("moustache", "full"):
        d.rectangle([cx + shift - mw - 4, mouth_y - 14, cx + shift + mw + 4, mouth_y - 5], fill=beard_col)
    # mouth
    expr = EXPRESSIONS[look.expression]
    left, right = (cx + shift - mw, mouth_y), (cx + shift + mw, mouth_y)
    lip = (150, 40, 50, 255)
    if expr == "smile":
        d.arc([left[0], mouth_y - 14, right[0], mouth_y + 12], 10, 170, fill=lip, width=5)
        left, right = (left[0], mouth_y - 1), (right[0], mouth_y - 1)
    elif expr == "open":
        d.ellipse([left[0] + 4, mouth_y - 8, right[0] - 4, mouth_y + 12], fill=(70, 15, 20, 255))
    elif expr == "frown":
        d.arc([left[0], mouth_y - 2, right[0], mouth_y + 22], 200, 340, fill=lip, width=5)
        left, right = (left[0], mouth_y + 6), (right[0], mouth_y + 6)
    else:
        d.line([left, right], fill=lip, width=5)
    # mole
    mole = MOLES[ident.mole]
    if mole != "none":
        mx, my = {
            "left": (cx - a * 0.55, cy + b * 0.25),
            "right": (cx + a * 0.55, cy + b * 0.25),
            "chin": (cx + 10, cy + b * 0.85),
        }[mole]
        d.ellipse([mx - 5 + shift, my - 5, mx + 5 + shift, my + 5], fill=(50, 30, 25, 255))
    _light(img, look)
    landmarks = np.array([eyes[0], eyes[1], nose, left, right], dtype=np.float64)
    return img, landmarks


def _light(img: Image.Image, look: Appearance) -> None:
    """Directional lighting: multiply RGB by a linear ramp across the sprite (in place)."""
    arr = np.asarray(img).astype(np.float32)
    yy, xx = np.mgrid[0:SPRITE, 0:SPRITE] / SPRITE - 0.5
    ramp = 1.0 + look.light_strength * (np.cos(look.light_angle) * xx + np.sin(look.light_angle) * yy) * 2
    arr[..., :3] = np.clip(arr[..., :3] * ramp[..., None], 0, 255)
    img.paste(Image.fromarray(arr.astype(np.uint8), "RGBA"))
