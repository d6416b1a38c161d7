"""Write the MiniWorld to disk, then its training manifest (the trainer's own format).

``write_world(folder, spec)`` draws every reference photo (``refs/<person>/<k>.png``) and every
training scene (``scenes/<i>.png``) and records their exact landmarks in ``world.jsonl``;
``complete`` marks a finished world (a rerun with the same spec is a no-op).

``write_training_manifest(folder, recognizer)`` embeds the *training* people's reference photos with
the world recognizer (ONNX, through the project's ``load_arcface_recognizer`` + ``arcface_crop``)
and writes ``manifest.jsonl`` (:mod:`train.manifest`): held-out people are not in it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..manifest import FaceAnnotation, ImageRecord, Manifest, ReferencePhoto, write_manifest
from .world import WorldSpec, people, reference_photo, training_scene


def _save_png(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(image).save(tmp)
    tmp.replace(path)


def write_world(folder: str | Path, spec: WorldSpec) -> Path:
    """Draw the world into ``folder``; returns ``folder / "world.jsonl"``."""
    folder = Path(folder)
    meta = folder / "world.jsonl"
    marker = folder / "complete"
    if marker.is_file() and json.loads(marker.read_text()) == dataclasses.asdict(spec):
        return meta
    folder.mkdir(parents=True, exist_ok=True)
    cast = people(spec)
    lines = [{"kind": "spec", **dataclasses.asdict(spec)}]
    for person in tqdm(cast, desc="reference photos"):
        for k in range(spec.references):
            scene = reference_photo(spec, person, k)
            rel = f"refs/{person.name}/{k}.png"
            _save_png(scene.image, folder / rel)
            lines.append(
                {
                    "kind": "reference",
                    "identity": person.name,
                    "split": person.split,
                    "image": rel,
                    "style": scene.style,
                    "landmarks": scene.landmarks[0].round(3).tolist(),
                }
            )
    train_cast = [p for p in cast if p.split == "train"]
    for i in tqdm(range(spec.scenes), desc="training scenes"):
        scene, chosen = training_scene(spec, i, train_cast)
        rel = f"scenes/{i:05d}.png"
        _save_png(scene.image, folder / rel)
        faces = [
            {"identity": p.name, "box": b.round(3).tolist(), "landmarks": lm.round(3).tolist()}
            for p, b, lm in zip(chosen, scene.boxes, scene.landmarks, strict=True)
        ]
        lines.append({"kind": "scene", "image": rel, "caption": scene.caption, "style": scene.style, "faces": faces})
    tmp = meta.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(x) + "\n" for x in lines))
    tmp.replace(meta)
    marker.write_text(json.dumps(dataclasses.asdict(spec)))
    return meta


def read_world(folder: str | Path) -> tuple[WorldSpec, list[dict]]:
    """The spec and the reference/scene records of a written world."""
    folder = Path(folder)
    if not (folder / "complete").is_file():
        raise FileNotFoundError(f"{folder} holds no finished MiniWorld; run `python -m train.miniworld generate`")
    lines = [json.loads(x) for x in (folder / "world.jsonl").read_text().splitlines() if x.strip()]
    spec = WorldSpec(**{k: v for k, v in lines[0].items() if k != "kind"})
    return spec, lines[1:]


def write_training_manifest(folder: str | Path, recognizer_path: str | Path) -> Path:
    """Embed the training people's references and write ``folder / "manifest.jsonl"``."""
    from anyphoto_core.faces import arcface_crop, load_arcface_recognizer, load_photo

    folder = Path(folder)
    _, records = read_world(folder)
    recognizer = load_arcface_recognizer(recognizer_path, providers=["CPUExecutionProvider"])
    galleries: dict[str, list[ReferencePhoto]] = {}
    refs = [r for r in records if r["kind"] == "reference" and r["split"] == "train"]
    for r in tqdm(refs, desc="embedding references"):
        path = folder / r["image"]
        lmk = np.asarray(r["landmarks"])
        emb = recognizer.embed(arcface_crop(load_photo(path), lmk))
        galleries.setdefault(r["identity"], []).append(ReferencePhoto(path, lmk, emb / np.linalg.norm(emb)))
    images = tuple(
        ImageRecord(
            folder / r["image"],
            r["caption"],
            tuple(FaceAnnotation(f["identity"], np.asarray(f["box"]), np.asarray(f["landmarks"])) for f in r["faces"]),
        )
        for r in records
        if r["kind"] == "scene"
    )
    out = folder / "manifest.jsonl"
    write_manifest(out, Manifest({k: tuple(v) for k, v in galleries.items()}, images))
    return out
