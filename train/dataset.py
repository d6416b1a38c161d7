"""Training sample construction (paper appendix 0.A.2, "Training Data Pipeline").

For one manifest image, :meth:`SampleBuilder.build`:

1. norm-crops every annotated face (``anyphoto_core.faces.aligned_crop_with_alpha``, ``crop_size``);
2. with probability ``p(step)`` (the curriculum, :func:`replacement_probability`) replaces each crop
   by the norm-crop of a random gallery photo of the same identity;
3. square-crops the photo so that all faces stay inside (side drawn uniformly between the faces'
   span + 10 % and ``min(short side, crop_max_ratio * span)``; when the faces' span exceeds the
   photo's short side, PIL pads black) and resizes it to ``resolution``;
4. degrades each face patch (:mod:`train.degradations`) and pastes it on its location canvas at the
   face's landmarks in the crop (``anyphoto_core.canvas.build_location_canvas``);
5. identity dropout: each identity independently with probability ``id_dropout`` is *dropped*: its
   canvas tokens are zeroed (same token positions, all latent values 0) and its embedding is the
   zero vector (so its modulation offset is ``MLP(0)``); dropped identities get no face loss.

Everything random comes from a ``numpy.random.Generator`` seeded by ``(seed, sample position)``,
so a sample depends only on its position in the data stream (exact resume, same data on any
number of GPUs).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from anyphoto_core.canvas import FacePatch, LocationCanvas, build_location_canvas
from anyphoto_core.faces import aligned_crop_with_alpha, arcface_crop, load_photo
from anyphoto_core.geometry import arcface_template

from .config import DataConfig
from .degradations import degrade, resolve_probabilities
from .manifest import Manifest

CROP_MARGIN = 1.1


def replacement_probability(step: int, milestones, p_max: float = 0.5, schedule: str = "piecewise") -> float:
    """Reference-face replacement probability at ``step``.

    With K milestones ``m_1 < ... < m_K``, the value reached at ``m_k`` is ``p_max * k / K`` (0 before
    ``m_1``, ``p_max`` from ``m_K`` on). ``"piecewise"``: constant between milestones; ``"linear"``:
    linear between ``(0, 0), (m_1, p_max/K), ..., (m_K, p_max)``.
    """
    m = np.asarray(milestones, dtype=np.float64)
    k = len(m)
    if schedule == "piecewise":
        return float(p_max * np.searchsorted(m, step, side="right") / k)
    if schedule == "linear":
        return float(np.interp(step, np.concatenate([[0.0], m]), p_max * np.arange(k + 1) / k))
    raise ValueError(f"replacement schedule must be 'piecewise' or 'linear', got {schedule!r}")


@dataclass(frozen=True)
class TrainingSample:
    """``image`` (R, R, 3) uint8; ``landmarks`` (N, 5, 2) pixels of ``image``; ``canvases`` N location
    canvases (R x R); ``embeddings`` (N, 512) float32 identity embeddings (zero where dropped);
    ``reference`` (N, 512) float32 identity embeddings (never zeroed; face-loss targets); both are the
    gallery means, used with ``data.embedding: gallery_mean``; ``faces`` (N, 112, 112, 3) uint8: the
    recognizer input (ArcFace ``norm_crop``) of the face actually pasted on each canvas (the target face,
    or its replacement), before degradation: with ``data.embedding: reference`` (the paper's eq. 15, the
    default) the trainer embeds these;
    ``keep`` (N,) bool, False = identity dropped; ``replaced`` (N,) bool; ``identities`` names."""

    image: np.ndarray
    caption: str
    landmarks: np.ndarray
    canvases: tuple[LocationCanvas, ...]
    embeddings: np.ndarray
    reference: np.ndarray
    faces: np.ndarray
    keep: np.ndarray
    replaced: np.ndarray
    identities: tuple[str, ...]


def square_crop_box(
    boxes: np.ndarray, width: int, height: int, rng: np.random.Generator, max_ratio: float = 4.0
) -> tuple[float, float, float]:
    """``(x0, y0, side)`` of a square containing every box ``(N, 4)``: side uniform in
    ``[1.1 * span, min(short side, max_ratio * span)]``, position uniform among those inside the photo."""
    x1, y1 = boxes[:, 0].min(), boxes[:, 1].min()
    x2, y2 = boxes[:, 2].max(), boxes[:, 3].max()
    span = max(x2 - x1, y2 - y1) * CROP_MARGIN
    short = min(width, height, max_ratio * span / CROP_MARGIN)
    side = float(rng.uniform(span, short)) if span < short else float(span)

    def start(lo_face, hi_face, extent):
        lo, hi = hi_face - side, lo_face  # square must cover [lo_face, hi_face]
        lo, hi = max(lo, 0.0), min(hi, extent - side)
        if lo > hi:  # square larger than the photo on this axis: centre it on the faces
            return float((lo_face + hi_face - side) / 2)
        return float(rng.uniform(lo, hi))

    return start(x1, x2, width), start(y1, y2, height), side


class SampleBuilder:
    """Builds :class:`TrainingSample` s from a :class:`~train.manifest.Manifest` (see module doc).
    The last ``photo_cache`` decoded photos are kept in memory (uint8 arrays)."""

    def __init__(self, manifest: Manifest, config: DataConfig, seed: int = 0, photo_cache: int = 32):
        self.manifest = manifest
        self.config = config
        self.seed = seed
        self.probabilities = resolve_probabilities(config.degradations)
        self._embeddings = {k: manifest.identity_embedding(k) for k in manifest.galleries}
        # decoded photos: a gallery photo is read again at every replacement, a small set every step
        self._load_photo = functools.lru_cache(maxsize=photo_cache)(load_photo)

    def __len__(self) -> int:
        return len(self.manifest.images)

    def index_at(self, position: int) -> int:
        """Manifest image at global stream ``position``: one seeded permutation per epoch."""
        n = len(self)
        epoch, offset = divmod(position, n)
        return int(np.random.default_rng([self.seed, epoch]).permutation(n)[offset])

    def _patch(self, image: np.ndarray, landmarks: np.ndarray) -> FacePatch:
        size = self.config.crop_size
        crop, alpha, _ = aligned_crop_with_alpha(image, landmarks, size)
        return FacePatch(crop, alpha, arcface_template(size))

    def build(self, position: int, step: int, augment: bool = True) -> TrainingSample:
        """The sample at stream ``position`` for training ``step`` (curriculum). ``augment=False``:
        no replacement, degradation or dropout, centred crop (fixed preview samples)."""
        cfg = self.config
        rng = np.random.default_rng([self.seed, position, 1])
        record = self.manifest.images[self.index_at(position)]
        photo = self._load_photo(record.image)
        p_replace = replacement_probability(step, cfg.replace_milestones, cfg.replace_max, cfg.replace_schedule)
        patches, replaced, faces = [], [], []
        for face in record.faces:
            if augment and rng.random() < p_replace:
                gallery = self.manifest.galleries[face.identity]
                ref = gallery[int(rng.integers(len(gallery)))]
                source, landmarks = self._load_photo(ref.image), ref.landmarks
                replaced.append(True)
            else:
                source, landmarks = photo, face.landmarks
                replaced.append(False)
            patches.append(self._patch(source, landmarks))
            faces.append(arcface_crop(source, landmarks))
        boxes = np.stack(
            [
                np.concatenate([np.minimum(f.box[:2], f.landmarks.min(0)), np.maximum(f.box[2:], f.landmarks.max(0))])
                for f in record.faces
            ]
        )
        h, w = photo.shape[:2]
        if augment:
            x0, y0, side = square_crop_box(boxes, w, h, rng, cfg.crop_max_ratio)
        else:
            span = (boxes[:, 2:].max(0) - boxes[:, :2].min(0)).max()
            side = float(max(min(w, h, cfg.crop_max_ratio * span), span * CROP_MARGIN))
            cx, cy = (boxes[:, 0].min() + boxes[:, 2].max()) / 2, (boxes[:, 1].min() + boxes[:, 3].max()) / 2
            x0, y0 = (
                float(np.clip(cx - side / 2, min(0, w - side), max(0, w - side))),
                float(np.clip(cy - side / 2, min(0, h - side), max(0, h - side))),
            )
        res = cfg.resolution
        crop = Image.fromarray(photo).crop((round(x0), round(y0), round(x0) + round(side), round(y0) + round(side)))
        image = np.array(crop.resize((res, res), Image.Resampling.LANCZOS))
        scale = res / round(side)
        landmarks = np.stack([(f.landmarks - [round(x0), round(y0)]) * scale for f in record.faces])
        canvases = []
        for patch, lmk in zip(patches, landmarks, strict=True):
            if augment:
                patch = degrade(patch, rng, self.probabilities)
            canvases.append(build_location_canvas(patch, lmk, (res, res)))
        reference = np.stack([self._embeddings[f.identity] for f in record.faces])
        keep = rng.random(len(record.faces)) >= cfg.id_dropout if augment else np.ones(len(record.faces), bool)
        caption = record.caption
        if augment and cfg.caption_dropout and rng.random() < cfg.caption_dropout:
            caption = ""
        return TrainingSample(
            image=image,
            caption=caption,
            landmarks=landmarks,
            canvases=tuple(canvases),
            embeddings=reference * keep[:, None],
            reference=reference,
            faces=np.stack(faces),
            keep=keep,
            replaced=np.asarray(replaced),
            identities=tuple(f.identity for f in record.faces),
        )
