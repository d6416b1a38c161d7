"""Preprocessing at scale: photos -> manifest, sharded over processes, resumable, with a summary.

Input: a folder searched recursively (``--images``) or a file list (``--file-list``, one path a line,
relative to the list's folder), plus ``--refs`` (one subfolder per identity, searched recursively).
The sorted listing is cut into shards of ``shard_size`` items; process ``rank`` of ``world`` (the
``RANK``/``WORLD_SIZE`` of ``accelerate launch``/``torchrun``, times ``--workers`` local processes) takes
shards ``rank, rank + world, ...``. Work files live in ``<out>.parts/``:

* ``listing.json``: count and hash of the listing and the shard size; a rerun with another listing stops;
* ``refs-<k>.jsonl`` / ``images-<k>.jsonl``: one finished shard, one JSON line per photo (an
  ``identity`` / ``image`` line of the manifest format, or ``{"kind": "rejected", "image", "reason"}``).
  While a shard is in flight its lines are appended (flushed per photo) to
  ``<name>.partial-r<rank>-<pid>``, renamed into place when the shard is done: a crash loses at most the
  shards in flight, and a rerun does only the shards that are not finished.

Stages: reference shards; every process waits until all exist (a file barrier, so it works across
nodes on shared storage), reads the galleries and their mean embeddings; image shards (detect, embed,
match: :func:`~train.manifest.match_faces`); process 0 waits for all image shards and merges them into
``<out>`` (streamed, atomically) and ``<out>.summary.json``: images listed/kept, faces detected/matched,
identities with images, and rejections by reason.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .manifest import (
    IMAGE_SUFFIXES,
    Manifest,
    ManifestError,
    RecognizerRecord,
    ReferencePhoto,
    identity_line,
    match_faces,
    parse_identity_line,
    read_hints,
    recognizer_line,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalyzerSpec:
    """How each process builds its face analyzer: an insightface root (``face_models`` + ``pack``) or an
    ArcFace ONNX ``recognizer`` with CenterFace detection."""

    face_models: str | None = None
    pack: str = "antelopev2"
    recognizer: str | None = None

    def load(self):
        from anyphoto_core.faces import load_centerface_analyzer, load_face_analyzer

        if self.face_models:
            return load_face_analyzer(self.face_models, self.pack)
        if self.recognizer:
            return load_centerface_analyzer(self.recognizer)
        raise ManifestError("give --face-models (folder with models/antelopev2) or --recognizer (ArcFace ONNX)")

    def record(self, analyzer) -> RecognizerRecord:
        """Name and hash of the recognizer ``analyzer`` (made by :meth:`load`) really runs."""
        name = self.pack if self.face_models else Path(self.recognizer).stem
        return RecognizerRecord.of_file(name, analyzer.recognizer.model_file)


@dataclass(frozen=True)
class PreprocessJob:
    images: tuple[Path, ...]  # sorted training photos
    refs: tuple[tuple[str, Path], ...]  # sorted (identity, reference photo)
    out: Path
    analyzer: AnalyzerSpec
    shard_size: int = 1000
    iou_weight: float = 0.5
    min_score: float = 0.3
    allow_missing_captions: bool = False
    barrier_timeout: float = 24 * 3600.0  # seconds a process waits for the others' shards

    @property
    def parts(self) -> Path:
        return self.out.with_name(self.out.name + ".parts")

    def shards(self, kind: str) -> list[tuple[Path, list]]:
        """``[(final shard file, its items)]`` for ``kind`` "refs" or "images"."""
        items = list(self.refs if kind == "refs" else self.images)
        size = self.shard_size
        return [
            (self.parts / f"{kind}-{k:06d}.jsonl", items[k * size : (k + 1) * size])
            for k in range(-(-len(items) // size))
        ]


def list_photos(folder: Path | None = None, file_list: Path | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively) or named in ``file_list``; sorted, absolute."""
    if file_list is not None:
        if not file_list.is_file():
            raise ManifestError(f"file list not found: {file_list}")
        root = file_list.parent
        paths = [Path(ln.strip()) for ln in file_list.read_text().splitlines() if ln.strip()]
        return sorted((p if p.is_absolute() else root / p).resolve() for p in paths)
    if folder is None or not folder.is_dir():
        raise ManifestError(f"image folder not found: {folder}")
    return sorted(p.resolve() for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def list_references(refs_dir: Path) -> list[tuple[str, Path]]:
    """``(identity, photo)`` for every photo under ``refs_dir/<identity>/`` (recursively), sorted."""
    if not refs_dir.is_dir():
        raise ManifestError(f"reference folder not found: {refs_dir} (one subfolder per identity)")
    refs = [
        (person.name, photo)
        for person in sorted(p for p in refs_dir.iterdir() if p.is_dir())
        for photo in list_photos(person)
    ]
    if not refs:
        raise ManifestError(f"{refs_dir} has no identity subfolder with photos (one subfolder per person)")
    return refs


def missing_captions(images) -> list[Path]:
    return [p for p in images if not p.with_suffix(".txt").is_file()]


def _check_listing(job: PreprocessJob) -> None:
    digest = hashlib.sha256("\n".join(map(str, (*job.images, *(p for _, p in job.refs)))).encode()).hexdigest()
    listing = {"images": len(job.images), "references": len(job.refs), "sha256": digest, "shard_size": job.shard_size}
    path = job.parts / "listing.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != listing:
            raise ManifestError(
                f"{job.parts} holds shards of another listing ({before['images']} images, shard size "
                f"{before['shard_size']}; now {listing['images']}, {listing['shard_size']}). Resume with the same "
                "inputs, or delete that folder / choose another --out to start over"
            )
        return
    job.parts.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"listing.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(listing))
    os.replace(tmp, path)


def _record_recognizer(job: PreprocessJob, analyzer) -> None:
    """Write ``recognizer.json`` (what embedded the shards); a rerun with another recognizer stops."""
    record, path = job.analyzer.record(analyzer), job.parts / "recognizer.json"
    if path.is_file():
        before = RecognizerRecord(**json.loads(path.read_text()))
        if before != record:
            raise ManifestError(
                f"the shards in {job.parts} were embedded by {before.name} (sha256 {before.sha256[:12]}...), this "
                f"run uses {record.name} ({record.sha256[:12]}...); embeddings of two recognizers cannot be mixed. "
                "Use the same face models, or delete that folder to start over"
            )
        return
    tmp = path.with_name(f"recognizer.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"name": record.name, "sha256": record.sha256}))
    os.replace(tmp, path)


def _write_shard(final: Path, items, handle, rank: int, bar) -> None:
    """Append ``handle(item)`` lines for ``items`` to a private partial file, then rename it to ``final``."""
    partial = final.with_name(f"{final.name}.partial-r{rank}-{os.getpid()}")
    with open(partial, "w") as f:
        for item in items:
            f.write(json.dumps(handle(item)) + "\n")
            f.flush()
            bar.update(1)
    os.replace(partial, final)


def _wait_for(paths: list[Path], what: str, timeout: float) -> None:
    """File barrier: return when every path exists; an error naming the missing ones after ``timeout`` s."""
    deadline, announced = time.monotonic() + timeout, False
    while missing := [p for p in paths if not p.is_file()]:
        if time.monotonic() > deadline:
            raise ManifestError(
                f"gave up waiting for {len(missing)} {what} shards (e.g. {missing[0]}); did a process die?"
            )
        if not announced:
            log.info("waiting for %d %s shards from other processes", len(missing), what)
            announced = True
        time.sleep(1.0)


def _reference_line(analyzer, item) -> dict:
    from anyphoto_core.faces import FaceError, face_ref_from_photo

    identity, photo = item
    try:
        ref = face_ref_from_photo(photo, analyzer, rule="largest")
    except FaceError as exc:
        return {"kind": "rejected", "image": str(photo), "identity": identity, "reason": type(exc).__name__}
    return identity_line(identity, [ReferencePhoto(photo, ref.landmarks, ref.embedding)], str)


def read_galleries(job: PreprocessJob) -> dict[str, tuple[ReferencePhoto, ...]]:
    galleries: dict[str, list[ReferencePhoto]] = {}
    for final, _ in job.shards("refs"):
        for n, line in enumerate(final.read_text().splitlines(), 1):
            obj = json.loads(line)
            if obj["kind"] == "identity":
                name, refs = parse_identity_line(obj, job.parts, f"{final}:{n}")
                galleries.setdefault(name, []).extend(refs)
    if not galleries:
        raise ManifestError("no reference photo has a usable face; check the --refs folder")
    return {k: tuple(v) for k, v in sorted(galleries.items())}


class _ImageMatcher:
    """Detect, embed and match the faces of one training photo (paper appendix 0.A.2, stages 2-3)."""

    def __init__(self, job: PreprocessJob, analyzer, galleries):
        self.job, self.analyzer, self.galleries = job, analyzer, galleries
        means = Manifest(galleries, ())
        self.embeddings = {k: means.identity_embedding(k) for k in galleries}

    def __call__(self, photo: Path) -> dict:
        from anyphoto_core.faces import UnreadableImageError, arcface_crop, load_photo

        caption_file = photo.with_suffix(".txt")
        caption = caption_file.read_text().strip() if caption_file.is_file() else ""
        try:
            image = load_photo(photo)
        except UnreadableImageError:
            return {"kind": "rejected", "image": str(photo), "reason": "unreadable image"}
        detections = self.analyzer.detector.detect(image)
        if not detections:
            return {"kind": "rejected", "image": str(photo), "reason": "no face detected"}
        embs = np.stack([self.analyzer.recognizer.embed(arcface_crop(image, d.landmarks)) for d in detections])
        embs = embs / np.linalg.norm(embs, axis=1, keepdims=True)
        hints = read_hints(photo)
        names = list(hints) if hints is not None else list(self.galleries)
        if unknown := [n for n in names if n not in self.galleries]:
            return {"kind": "rejected", "image": str(photo), "reason": f"hints name unknown identities {unknown}"}
        candidates = [(n, self.embeddings[n], (hints or {}).get(n)) for n in names]
        matches = match_faces([d.box for d in detections], embs, candidates, self.job.iou_weight, self.job.min_score)
        if not matches:
            return {
                "kind": "rejected",
                "image": str(photo),
                "reason": "no face matched an identity",
                "detected": len(detections),
            }
        faces = [
            {
                "identity": name,
                "box": np.asarray(detections[i].box, float).tolist(),
                "landmarks": np.asarray(detections[i].landmarks, float).tolist(),
                "score": float(detections[i].score),
                "match": round(score, 4),
            }
            for i, (name, score) in sorted(matches.items())
        ]
        return {"kind": "image", "image": str(photo), "caption": caption, "faces": faces, "detected": len(detections)}


def run_shards(job: PreprocessJob, rank: int, world: int) -> None:
    """Everything process ``rank`` of ``world`` does: its reference shards, the barrier, its image shards."""
    from tqdm.auto import tqdm

    analyzer = None

    def todo(kind):
        return [(f, items) for k, (f, items) in enumerate(job.shards(kind)) if k % world == rank and not f.is_file()]

    for kind in ("refs", "images"):
        mine = todo(kind)
        if mine and analyzer is None:
            analyzer = job.analyzer.load()
            _record_recognizer(job, analyzer)
        if mine:
            if kind == "refs":
                handle = functools.partial(_reference_line, analyzer)
            else:
                handle = _ImageMatcher(job, analyzer, read_galleries(job))
            with tqdm(
                total=sum(len(i) for _, i in mine), desc=f"{kind} {rank}/{world}", unit="photo", position=rank % 8
            ) as bar:
                for final, items in mine:
                    _write_shard(final, items, handle, rank, bar)
        if kind == "refs":
            _wait_for([f for f, _ in job.shards("refs")], "reference", job.barrier_timeout)


def merge(job: PreprocessJob) -> dict:
    """Stream every shard into ``job.out`` (identity lines, then image lines; paths relative to its folder)
    and write ``<out>.summary.json``; returns the summary."""
    root = job.out.parent.resolve()

    def rel(path: str) -> str:
        p = Path(path).resolve()
        return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)

    galleries = read_galleries(job)
    rejected, ref_rejected, with_images = Counter(), Counter(), set()
    kept = detected = matched = 0
    tmp = job.out.with_name(f"{job.out.name}.tmp-{os.getpid()}")
    recognizer = RecognizerRecord(**json.loads((job.parts / "recognizer.json").read_text()))
    with open(tmp, "w") as out:
        out.write(json.dumps(recognizer_line(recognizer)) + "\n")
        for name, refs in galleries.items():
            out.write(json.dumps(identity_line(name, refs, rel)) + "\n")
        for final, _ in job.shards("refs"):
            for line in final.read_text().splitlines():
                obj = json.loads(line)
                if obj["kind"] == "rejected":
                    ref_rejected[obj["reason"]] += 1
        for final, _ in job.shards("images"):
            for line in final.read_text().splitlines():
                obj = json.loads(line)
                detected += obj.get("detected", 0)
                if obj["kind"] == "rejected":
                    rejected[obj["reason"]] += 1
                    continue
                if not obj["caption"] and not job.allow_missing_captions:
                    raise ManifestError(f"{obj['image']} has no caption in its shard; preprocess with captions")
                kept += 1
                matched += len(obj["faces"])
                with_images.update(f["identity"] for f in obj["faces"])
                out.write(json.dumps({**obj, "image": rel(obj["image"])}) + "\n")
    if not kept:
        tmp.unlink()
        raise ManifestError(f"no image kept (rejected: {dict(rejected)}); nothing to train on")
    os.replace(tmp, job.out)
    summary = {
        "recognizer": recognizer.name,
        "images": len(job.images),
        "kept": kept,
        "rejected": dict(sorted(rejected.items())),
        "faces_detected": detected,
        "faces_matched": matched,
        "identities": len(galleries),
        "identities_with_images": len(with_images),
        "references": len(job.refs),
        "references_rejected": dict(sorted(ref_rejected.items())),
    }
    summary_path = job.out.with_name(job.out.name + ".summary.json")
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    for stale in job.parts.glob("*.partial-*"):  # left by crashed processes; every shard is finished now
        stale.unlink(missing_ok=True)
    return summary


def _pool_worker(job: PreprocessJob, rank: int, world: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_shards(job, rank, world)


def preprocess(job: PreprocessJob, rank: int = 0, world: int = 1, workers: int = 1) -> dict | None:
    """Run this process's share with ``workers`` local processes; process 0 merges. Returns the summary
    (process 0) or None."""
    if not job.allow_missing_captions and (missing := missing_captions(job.images)):
        raise ManifestError(
            f"{len(missing)} of {len(job.images)} images have no caption file <stem>.txt (e.g. {missing[0]}); "
            "add the captions, or pass --allow-missing-captions to train those images with an empty caption"
        )
    _check_listing(job)
    if workers <= 1:
        run_shards(job, rank, world)
    else:
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(target=_pool_worker, args=(job, rank * workers + i, world * workers)) for i in range(workers)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if failed := [p.exitcode for p in procs if p.exitcode]:
            raise ManifestError(
                f"{len(failed)} preprocessing workers failed (exit codes {failed}; their errors are above); "
                "a rerun resumes"
            )
    if rank != 0:
        return None
    _wait_for([f for f, _ in job.shards("images")], "image", job.barrier_timeout)
    return merge(job)
