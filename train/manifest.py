"""Training manifest (JSONL) and the preprocessing command that builds it.

One JSON object per line, two kinds (paths relative to the manifest's folder, or absolute):

* ``{"kind": "identity", "identity": "alice", "references": [{"image": "refs/alice/1.jpg",
  "landmarks": [[x, y] x5], "embedding": [512 floats]}, ...]}`` — the reference gallery of one
  person (many photos; ``embedding`` L2-normalized ArcFace, the project convention).
* ``{"kind": "image", "image": "images/a.jpg", "caption": "...", "faces": [{"identity": "alice",
  "box": [x1, y1, x2, y2], "landmarks": [[x, y] x5], "score": 0.98, "match": 0.71}, ...]}`` — a
  training photo with every matched face (pixels of the photo; landmarks in ArcFace order: left eye,
  right eye, nose, left mouth corner, right mouth corner, "left" = image left).

Preprocessing (:mod:`train.preprocess`; paper appendix 0.A.2, stages 2-3): detect faces, embed them, and
assign each to a known identity by greedy matching on ``w * IoU(box, hint box) + (1 - w) * cos(embedding, identity)``
(cosine only when the image has no hint box for that identity). Person segmentation (YOLO) and
VLM captioning are not part of this command: captions come from a sidecar ``<image stem>.txt``.
Optional sidecar ``<image stem>.json``: ``{"identities": {"alice": [x1, y1, x2, y2] | null, ...}}``
restricts the candidates to those people and gives hint boxes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


class ManifestError(ValueError):
    """A manifest line or data folder that does not fit the format; the message names the place."""


@dataclass(frozen=True)
class ReferencePhoto:
    """One gallery photo: ``image`` path, ``landmarks`` (5, 2) pixels, ``embedding`` (512,) L2-normalized."""

    image: Path
    landmarks: np.ndarray
    embedding: np.ndarray


@dataclass(frozen=True)
class FaceAnnotation:
    """A matched face of a training photo: ``box`` (4,) and ``landmarks`` (5, 2) in photo pixels."""

    identity: str
    box: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class ImageRecord:
    image: Path
    caption: str
    faces: tuple[FaceAnnotation, ...]


@dataclass(frozen=True)
class RecognizerRecord:
    """The recognizer that embedded the manifest: ``name`` (insightface pack, or the ONNX file's stem), ``sha256``
    of its ONNX file. Line: ``{"kind": "recognizer", "name": "antelopev2", "sha256": "..."}``."""

    name: str
    sha256: str

    @classmethod
    def of_file(cls, name: str, path: str | Path) -> RecognizerRecord:
        return cls(name, file_sha256(path))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """``galleries``: identity -> reference photos; ``images``: training photos with >= 1 matched face."""

    galleries: dict[str, tuple[ReferencePhoto, ...]]
    images: tuple[ImageRecord, ...]
    recognizer: RecognizerRecord | None = None  # None: a manifest written without the record (not by preprocess)

    def identity_embedding(self, identity: str) -> np.ndarray:
        """(512,) float32: L2-normalized mean of the gallery embeddings (project convention)."""
        mean = np.mean([r.embedding for r in self.galleries[identity]], axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)


def trained_recognizer(manifest: Manifest, loss_recognizer: str) -> str:
    """Name of the recognizer whose embeddings the projector trains on (the adapter's ``recognizer`` metadata):
    the manifest's record, else the face loss's ONNX file stem, else "unknown". When both exist, the face
    loss must use the very file that embedded the manifest (its loss compares the two embeddings)."""
    record = manifest.recognizer
    if record is None:
        return Path(loss_recognizer).stem if loss_recognizer else "unknown"
    if loss_recognizer and Path(loss_recognizer).is_file() and file_sha256(loss_recognizer) != record.sha256:
        raise ManifestError(
            f"the manifest was embedded by {record.name} (sha256 {record.sha256[:12]}...), but model.recognizer "
            f"{loss_recognizer} is another file: the face loss would compare embeddings of two recognizers. Set "
            "model.recognizer to the recognizer preprocessing used (e.g. antelopev2/glintr100.onnx)"
        )
    return record.name


def _points(value, shape, where: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape or not np.isfinite(arr).all():
        raise ManifestError(f"{where}: expected finite numbers of shape {shape}, got {arr.shape}")
    return arr


def _resolve(root: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def parse_identity_line(obj: dict, root: Path, where: str) -> tuple[str, tuple[ReferencePhoto, ...]]:
    """``(identity, reference photos)`` of an ``identity`` line (paths relative to ``root``)."""
    refs = tuple(
        ReferencePhoto(
            _resolve(root, r["image"]),
            _points(r["landmarks"], (5, 2), where),
            _points(r["embedding"], (512,), where).astype(np.float32),
        )
        for r in obj["references"]
    )
    if not refs:
        raise ManifestError(f"{where}: identity {obj['identity']!r} has no reference photos")
    return obj["identity"], refs


def recognizer_line(record: RecognizerRecord) -> dict:
    return {"kind": "recognizer", "name": record.name, "sha256": record.sha256}


def identity_line(name: str, refs, rel) -> dict:
    """The ``identity`` line of ``name``'s reference photos; ``rel`` maps a path to the string stored."""
    return {
        "kind": "identity",
        "identity": name,
        "references": [
            {
                "image": rel(r.image),
                "landmarks": np.asarray(r.landmarks).tolist(),
                "embedding": [round(float(v), 6) for v in r.embedding],
            }
            for r in refs
        ],
    }


def read_manifest(path: str | Path) -> Manifest:
    """Parse and validate a manifest; every face's identity must have a gallery."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}; build one with `python -m train preprocess`")
    root, galleries, images, recognizer = path.parent, {}, [], None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
            if obj["kind"] == "identity":
                name, refs = parse_identity_line(obj, root, where)
                galleries[name] = refs
            elif obj["kind"] == "recognizer":
                recognizer = RecognizerRecord(str(obj["name"]), str(obj["sha256"]))
            elif obj["kind"] == "image":
                faces = tuple(
                    FaceAnnotation(
                        f["identity"], _points(f["box"], (4,), where), _points(f["landmarks"], (5, 2), where)
                    )
                    for f in obj["faces"]
                )
                images.append(ImageRecord(_resolve(root, obj["image"]), str(obj.get("caption", "")), faces))
            else:
                raise ManifestError(f"{where}: unknown kind {obj['kind']!r} (use 'recognizer', 'identity' or 'image')")
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{where}: malformed line ({exc!r}); see docs/training.md for the format") from None
    for rec in images:
        for face in rec.faces:
            if face.identity not in galleries:
                raise ManifestError(f"{rec.image}: face identity {face.identity!r} has no 'identity' line (gallery)")
    images = [r for r in images if r.faces]
    if not images:
        raise ManifestError(f"{path} has no image with a matched face")
    return Manifest(galleries, tuple(images), recognizer)


def write_manifest(path: str | Path, manifest: Manifest) -> None:
    """Write ``manifest`` as JSONL (paths relative to the manifest's folder when possible)."""
    path = Path(path)
    root = path.parent.resolve()

    def rel(p: Path) -> str:
        p = Path(p).resolve()
        return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)

    lines = [recognizer_line(manifest.recognizer)] if manifest.recognizer else []
    lines += [identity_line(name, refs, rel) for name, refs in sorted(manifest.galleries.items())]
    lines += [
        {
            "kind": "image",
            "image": rel(r.image),
            "caption": r.caption,
            "faces": [
                {"identity": f.identity, "box": f.box.tolist(), "landmarks": f.landmarks.tolist()} for f in r.faces
            ],
        }
        for r in manifest.images
    ]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    tmp.replace(path)


def box_iou(a, b) -> float:
    """IoU of two ``x1, y1, x2, y2`` boxes (0 when they do not overlap)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match_faces(
    boxes: list,
    embeddings: np.ndarray,
    candidates: list[tuple[str, np.ndarray, list | None]],
    iou_weight: float = 0.5,
    min_score: float = 0.3,
) -> dict[int, tuple[str, float]]:
    """Greedy face -> identity assignment (paper appendix 0.A.2, stage 3).

    ``boxes``: detected boxes; ``embeddings``: (F, 512) L2-normalized; ``candidates``: (name, (512,)
    identity embedding, hint box or None). Score = ``iou_weight * IoU + (1 - iou_weight) * cos`` with a
    hint box, ``cos`` without. Pairs are taken best-first, each face and identity at most once,
    down to ``min_score``. Returns ``{face index: (identity, score)}``.
    """
    pairs = []
    for i, (box, emb) in enumerate(zip(boxes, embeddings, strict=True)):
        for j, (_, ref, hint) in enumerate(candidates):
            cos = float(np.dot(emb, ref))
            score = cos if hint is None else iou_weight * box_iou(box, hint) + (1.0 - iou_weight) * cos
            pairs.append((score, i, j))
    out, used = {}, set()
    for score, i, j in sorted(pairs, key=lambda p: -p[0]):
        if score < min_score or i in out or j in used:
            continue
        out[i] = (candidates[j][0], score)
        used.add(j)
    return out


def read_hints(photo: Path) -> dict | None:
    """The optional ``<stem>.json`` sidecar: ``{identity: hint box or None}``, or None without a sidecar."""
    sidecar = photo.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text())["identities"]
    except (KeyError, json.JSONDecodeError) as exc:
        raise ManifestError(f'{sidecar}: expected {{"identities": {{name: box or null}}}} ({exc!r})') from None
    return {k: (None if v is None else list(map(float, v))) for k, v in data.items()}
