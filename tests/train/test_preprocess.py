"""Preprocessing at scale on real photos (CenterFace + the fixture recognizer): nested folders or a file list,
shards, a crash that loses only the shard in flight, resume, 2 worker processes, the merged summary."""

import json

import numpy as np
import pytest
from fixtures.face_models import insightface_image
from PIL import Image

from train.manifest import ManifestError, RecognizerRecord, read_manifest
from train.preprocess import AnalyzerSpec, PreprocessJob, _ImageMatcher, list_photos, list_references, preprocess

# t1.jpg: boxes of two faces (CenterFace detections, see conftest.T1_FACES)
LEFT, RIGHT = [269, 150, 375, 269], [748, 342, 847, 482]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """images/ (nested): two copies of t1.jpg (one with hint boxes), a blank photo, a broken file; every photo
    captioned. refs/left, refs/right: crops of t1.jpg around one face each."""
    root = tmp_path_factory.mktemp("photos")
    t1 = Image.open(insightface_image("t1.jpg")).convert("RGB")
    for rel in ("party/2024/a.jpg", "party/b.jpg"):
        (root / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        t1.save(root / "images" / rel)
    Image.new("RGB", (320, 240), (128, 128, 128)).save(root / "images" / "blank.png")
    (root / "images" / "bad.jpg").write_bytes(b"not a jpeg")
    hints = {"identities": {"left": LEFT, "right": RIGHT}}
    (root / "images" / "party" / "2024" / "a.json").write_text(json.dumps(hints))
    for photo in list_photos(root / "images"):
        photo.with_suffix(".txt").write_text(f"a photo named {photo.stem}")
    for name, (x1, y1, x2, y2) in {"left": LEFT, "right": RIGHT}.items():
        (root / "refs" / name).mkdir(parents=True)
        t1.crop((x1 - 80, y1 - 80, x2 + 80, y2 + 80)).save(root / "refs" / name / "1.jpg")
    return root


def _job(photos, out, recognizer_path, **kw):
    return PreprocessJob(
        images=tuple(list_photos(photos / "images")),
        refs=tuple(list_references(photos / "refs")),
        out=out,
        analyzer=AnalyzerSpec(recognizer=str(recognizer_path)),
        shard_size=1,
        **kw,
    )


def test_nested_folder_and_file_list_give_the_same_listing(photos, tmp_path):
    found = list_photos(photos / "images")
    assert [p.relative_to(photos / "images").as_posix() for p in found] == [
        "bad.jpg",
        "blank.png",
        "party/2024/a.jpg",
        "party/b.jpg",
    ]
    listing = photos / "list.txt"
    listing.write_text(f"images/party/b.jpg\n\nimages/bad.jpg\n{photos}/images/blank.png\nimages/party/2024/a.jpg\n")
    assert list_photos(file_list=listing) == found


def test_missing_caption_stops_before_any_face_work(photos, tmp_path):
    caption = photos / "images" / "blank.txt"
    saved = caption.read_text()
    caption.unlink()
    try:
        job = _job(photos, tmp_path / "m.jsonl", "no-such-recognizer.onnx")
        with pytest.raises(ManifestError, match=r"1 of 4 images have no caption file .*blank\.png.*--allow-missing"):
            preprocess(job)
    finally:
        caption.write_text(saved)
    assert not (tmp_path / "m.jsonl.parts").exists()


def test_crash_loses_only_the_shard_in_flight_and_a_rerun_resumes(photos, recognizer_path, tmp_path, monkeypatch):
    out = tmp_path / "manifest.jsonl"
    job = _job(photos, out, recognizer_path)
    real = _ImageMatcher.__call__

    def crash_on_a(self, photo):
        if photo.name == "a.jpg":
            raise RuntimeError("node lost (simulated)")
        return real(self, photo)

    monkeypatch.setattr(_ImageMatcher, "__call__", crash_on_a)
    with pytest.raises(RuntimeError, match="simulated"):
        preprocess(job)
    parts = job.parts
    done = sorted(p.name for p in parts.glob("images-*.jsonl"))
    assert done == ["images-000000.jsonl", "images-000001.jsonl"]  # bad.jpg, blank.png
    assert len(list(parts.glob("images-000002.jsonl.partial-*"))) == 1
    stamps = {p: p.stat().st_mtime_ns for p in parts.glob("*.jsonl")}
    monkeypatch.undo()
    summary = preprocess(job)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # finished shards were not redone
    assert not list(parts.glob("*.partial-*"))
    assert summary == {
        "recognizer": "tiny_recognizer",
        "images": 4,
        "kept": 2,
        "rejected": {"no face detected": 1, "unreadable image": 1},
        "faces_detected": summary["faces_detected"],
        "faces_matched": summary["faces_matched"],
        "identities": 2,
        "identities_with_images": 2,
        "references": 2,
        "references_rejected": {},
    }
    assert summary["faces_detected"] >= 2 * 3 and summary["faces_matched"] >= 3
    assert json.loads(out.with_name("manifest.jsonl.summary.json").read_text()) == summary
    manifest = read_manifest(out)
    assert manifest.recognizer == RecognizerRecord.of_file("tiny_recognizer", recognizer_path)
    assert set(manifest.galleries) == {"left", "right"}
    hinted = next(r for r in manifest.images if r.image.name == "a.jpg")
    assert [f.identity for f in hinted.faces] == ["left", "right"]
    for face, box in zip(hinted.faces, (LEFT, RIGHT), strict=True):
        np.testing.assert_allclose(face.box, box, atol=25)
    assert hinted.caption == "a photo named a"
    # another listing in the same work folder is refused, not mixed
    with pytest.raises(ManifestError, match="holds shards of another listing"):
        preprocess(PreprocessJob(**{**job.__dict__, "shard_size": 2}))
    # two local worker processes give the same manifest
    out2 = tmp_path / "two" / "manifest.jsonl"
    out2.parent.mkdir()
    assert preprocess(_job(photos, out2, recognizer_path), workers=2) == summary
    assert _lines(out2, out2.parent) == _lines(out, out.parent)


def _lines(path, root):
    """Manifest lines with absolute image paths (the two manifests sit in different folders)."""
    out = []
    for line in path.read_text().splitlines():
        obj = json.loads(line)
        if obj["kind"] == "image":
            obj["image"] = str((root / obj["image"]).resolve())
        elif obj["kind"] == "identity":
            for ref in obj["references"]:
                ref["image"] = str((root / ref["image"]).resolve())
        out.append(obj)
    return out
