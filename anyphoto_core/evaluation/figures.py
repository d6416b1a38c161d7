"""Pictures for the evaluation report: annotated images (PIL) and histograms (inline SVG).

Identity k (0-based) is drawn in :func:`identity_color` ``(k)`` and labelled ``k + 1`` everywhere.
"""

from __future__ import annotations

import html

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .metrics import PlacementResult

#: Distinct colours for identities 1..8 (then repeating); RGB.
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
)
STRANGER_COLOR = (160, 160, 160)


def identity_color(k: int) -> tuple[int, int, int]:
    return PALETTE[k % len(PALETTE)]


def identity_hex(k: int) -> str:
    """:func:`identity_color` as a CSS ``#rrggbb`` string."""
    r, g, b = identity_color(k)
    return f"#{r:02x}{g:02x}{b:02x}"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def fit(image: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """``image`` shrunk so its longer side is at most ``max_side``; returns it and the scale used."""
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    return image.convert("RGB"), scale


def _label(draw: ImageDraw.ImageDraw, xy, text: str, color, font) -> None:
    """White text on a ``color`` tag whose bottom-left is at ``xy`` (inside the image when no room above)."""
    x, y = xy
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 4
    y = y - h if y - h >= 0 else y
    draw.rectangle((x, y, x + w, y + h), fill=color)
    draw.text((x + 3 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)


def _dashed_box(draw: ImageDraw.ImageDraw, box, color, width: int, dash: int = 8) -> None:
    x1, y1, x2, y2 = box
    for ax, ay, bx, by in ((x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2), (x1, y2, x1, y1)):
        length = float(np.hypot(bx - ax, by - ay))
        steps = max(1, int(length // dash))
        for i in range(0, steps, 2):
            t0, t1 = i / steps, min(1.0, (i + 1) / steps)
            draw.line(
                (ax + (bx - ax) * t0, ay + (by - ay) * t0, ax + (bx - ax) * t1, ay + (by - ay) * t1),
                fill=color,
                width=width,
            )


def annotate_generation(
    image: Image.Image, targets, face_boxes, placement: PlacementResult | None, max_side: int = 512
) -> Image.Image:
    """Generated image with target boxes (dashed, ``T k``) and detected faces (solid).

    A face credited to identity k is drawn in k's colour and labelled ``k cos``; a duplicate of k
    is labelled ``dup k``; any other face is grey ``?``. ``targets`` ``(K, 4)`` and ``face_boxes``
    ``(M, 4)`` are in the image's pixels.
    """
    out, s = fit(image, max_side)
    draw = ImageDraw.Draw(out)
    font = _font(max(11, out.width // 40))
    width = max(2, out.width // 200)
    if targets is not None:
        for k, box in enumerate(np.asarray(targets, dtype=float)):
            _dashed_box(draw, box * s, identity_color(k), width)
            draw.text((box[0] * s + 3, box[3] * s - font.size - 4), f"T{k + 1}", fill=identity_color(k), font=font)
    owner = {}
    if placement is not None:
        owner.update(
            {
                p.face: (p.identity, f"{p.identity + 1} {p.similarity:.2f}")
                for p in placement.identities
                if p.face is not None
            }
        )
        owner.update({j: (k, f"dup {k + 1}") for j, k in placement.duplicates})
    for j, box in enumerate(np.asarray(face_boxes, dtype=float).reshape(-1, 4)):
        k, text = owner.get(j, (None, "?"))
        color = STRANGER_COLOR if k is None else identity_color(k)
        draw.rectangle(tuple(box * s), outline=color, width=width + 1)
        _label(draw, (box[0] * s, box[1] * s), text, color, font)
    return out


def annotate_faces(image: Image.Image, face_boxes, max_side: int = 256) -> Image.Image:
    """An image (the GT) with its detected faces outlined in grey."""
    out, s = fit(image, max_side)
    draw = ImageDraw.Draw(out)
    for box in np.asarray(face_boxes, dtype=float).reshape(-1, 4):
        draw.rectangle(tuple(box * s), outline=(255, 255, 0), width=2)
    return out


def face_thumbnail(image: Image.Image, box, k: int, size: int = 112) -> Image.Image:
    """Square crop around ``box`` (1.6x its larger side), ``size`` px, framed in identity k's colour.

    ``box`` ``None`` (no face found) gives the whole image, framed.
    """
    if box is not None:
        x1, y1, x2, y2 = (float(v) for v in box)
        half = 0.8 * max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        image = image.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
    thumb = image.convert("RGB").resize((size, size), Image.LANCZOS)
    draw = ImageDraw.Draw(thumb)
    draw.rectangle((0, 0, size - 1, size - 1), outline=identity_color(k), width=4)
    _label(draw, (4, 4), str(k + 1), identity_color(k), _font(14))
    return thumb


def histogram_svg(values, title: str, lo: float, hi: float, bins: int = 20, width: int = 360, height: int = 180) -> str:
    """Inline SVG histogram of ``values`` over ``[lo, hi]`` (values outside are clamped to the end bins)."""
    vals = np.clip(np.asarray([v for v in values if v is not None], dtype=float), lo, hi)
    counts, edges = np.histogram(vals, bins=bins, range=(lo, hi))
    pad_l, pad_b, pad_t = 34, 28, 22
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    top = max(1, int(counts.max()) if counts.size else 1)
    bar_w = plot_w / bins
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="hist">',
        f'<text x="{width / 2}" y="15" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{html.escape(title)} (n={vals.size})</text>",
    ]
    for i, c in enumerate(counts):
        h = plot_h * c / top
        parts.append(
            f'<rect x="{pad_l + i * bar_w + 1:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{h:.1f}" fill="#3b7dd8"><title>[{edges[i]:.2f}, {edges[i + 1]:.2f}): {c}</title></rect>'
        )
    base = pad_t + plot_h
    parts.append(f'<line x1="{pad_l}" y1="{base}" x2="{pad_l + plot_w}" y2="{base}" stroke="#333"/>')
    parts.append(f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{base}" stroke="#333"/>')
    for frac in (0.0, 0.5, 1.0):
        x = pad_l + plot_w * frac
        parts.append(
            f'<text x="{x:.1f}" y="{base + 14}" text-anchor="middle" font-size="11">{lo + (hi - lo) * frac:g}</text>'
        )
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + 9}" text-anchor="end" font-size="11">{top}</text>')
    parts.append(f'<text x="{pad_l - 4}" y="{base}" text-anchor="end" font-size="11">0</text>')
    if vals.size:
        mean = float(vals.mean())
        mx = pad_l + plot_w * (mean - lo) / (hi - lo)
        parts.append(
            f'<line x1="{mx:.1f}" y1="{pad_t}" x2="{mx:.1f}" y2="{base}" stroke="#d33" stroke-dasharray="4 3"/>'
        )
        left = mx > pad_l + 0.7 * plot_w  # keep the label inside the plot
        parts.append(
            f'<text x="{mx - 3 if left else mx + 3:.1f}" y="{pad_t + 10}" font-size="11" fill="#d33" '
            f'text-anchor="{"end" if left else "start"}">mean {mean:.3f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
