"""Evaluation pipeline end to end on a synthetic bench with a fake face analyzer; optional CLIP loading."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anyphoto_core.evaluation import load_bench, metrics
from anyphoto_core.evaluation.case_metrics import pad_reference
from anyphoto_core.evaluation.cli import main
from anyphoto_core.evaluation.quality import ClipScorer, load_quality_scorers
from anyphoto_core.geometry import box_to_landmarks

D = 512


def emb(*weights) -> np.ndarray:
    v = np.zeros(D, dtype=np.float32)
    v[: len(weights)] = weights
    return v


# Faces are flat colour squares; the fake analyzer finds each known colour and returns its embedding.
COLORS = {
    (200, 30, 30): emb(1, 0, 0),  # reference A
    (30, 30, 200): emb(0, 1, 0),  # reference B
    (210, 40, 40): emb(0.8, 0, 0.6),  # A as in the GT photo
    (40, 40, 210): emb(0, 0.8, 0, 0.6),  # B as in the GT photo
    (190, 60, 60): emb(0.9, 0, 0.3, 0.3),  # A as generated
    (60, 60, 190): emb(0, 0.9, 0.3, -0.3),  # B as generated
}
REF_A, REF_B, GT_A, GT_B, GEN_A, GEN_B = COLORS


@dataclass
class FakeFace:
    box: np.ndarray
    score: float
    landmarks: np.ndarray


class FakeAnalyzer:
    def detect(self, image):
        faces = []
        for color in COLORS:
            ys, xs = np.nonzero(np.all(image == np.array(color, dtype=np.uint8), axis=-1))
            if len(xs):
                box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)
                faces.append(FakeFace(box, 0.9, box_to_landmarks(box)))
        return faces

    def embed(self, image, landmarks):
        x, y = np.round(landmarks[2]).astype(int)  # the nose lies inside the square
        return COLORS[tuple(int(c) for c in image[y, x])]


def picture(path: Path, size, squares, fmt: str = "PNG") -> None:
    """Lossless picture (PNG content whatever the file name, so the fake analyzer finds exact colours)."""
    img = Image.new("RGB", size, (235, 235, 235))
    for color, box in squares:
        img.paste(color, tuple(box))
    img.save(path, format=fmt)


@pytest.fixture
def bench(tmp_path):
    data, gen = tmp_path / "bench", tmp_path / "gen"
    data.mkdir()
    gen.mkdir()
    picture(data / "a.png", (120, 90), [(REF_A, (30, 20, 80, 80))])
    picture(data / "b.png", (100, 100), [(REF_B, (20, 20, 70, 75))])
    # GT 400x200, A left, B right; generations are 200x100 (half size)
    gt_boxes = [[40, 40, 120, 140], [240, 40, 320, 140]]
    (data / "num_2").mkdir()
    picture(data / "num_2" / "0001.png", (400, 200), [(GT_A, gt_boxes[0]), (GT_B, gt_boxes[1])])
    picture(data / "0002.png", (400, 200), [(GT_A, gt_boxes[0]), (GT_B, gt_boxes[1])])
    (data / "0002.json").write_text(json.dumps({"caption_en": "x", "bboxes": gt_boxes}))
    cases = [
        {
            "prompt": "two people, correct",
            "image_paths": ["a.png", "b.png"],
            "ori_img_path": "num_2/0001.png",
            "bboxes": gt_boxes,
        },
        {"prompt": "two people, swapped", "image_paths": ["a.png", "b.png"], "ori_img_path": "0002.png"},
        {
            "id": "lost",
            "prompt": "never generated",
            "image_paths": ["a.png"],
            "ori_img_path": "0002.png",
            "bboxes": [gt_boxes[0]],
        },
    ]
    (data / "bench.json").write_text(json.dumps(cases))
    picture(gen / "num_2_0001.png", (200, 100), [(GEN_A, (20, 20, 60, 70)), (GEN_B, (120, 20, 160, 70))])
    (gen / "0002").mkdir()
    picture(gen / "0002" / "out.jpg", (200, 100), [(GEN_B, (20, 20, 60, 70)), (GEN_A, (120, 20, 160, 70))])
    return data / "bench.json", gen, gt_boxes


def test_load_bench_keys_ids_and_box_sidecar(bench):
    path, _, gt_boxes = bench
    cases = load_bench(path)
    assert [c.id for c in cases] == ["num_2_0001", "0002", "lost"]
    assert cases[0].ref_paths[1] == path.parent / "b.png"
    assert cases[1].boxes.tolist() == gt_boxes  # read from 0002.json beside the GT
    assert cases[2].boxes.shape == (1, 4)


def test_load_bench_errors_name_the_case(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps([{"prompt": "p", "image_paths": ["a.png", "b.png"], "bboxes": [[0, 0, 1, 1]]}]))
    with pytest.raises(ValueError, match="case 1 of b.json has 1 boxes but 2 reference"):
        load_bench(bad)
    bad.write_text(json.dumps([{"prompt": "p"}]))
    with pytest.raises(ValueError, match="needs 'image_paths'"):
        load_bench(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_bench(tmp_path / "missing.json")


def test_pad_reference_matches_bench_padding():
    img = np.full((90, 120, 3), 7, dtype=np.uint8)
    padded, (ox, oy) = pad_reference(img)
    assert padded.shape == (180, 180, 3) and (ox, oy) == (30, 45)
    assert padded[45:135, 30:150].min() == 7 and padded.sum() == img.sum()


def test_cli_end_to_end(bench, tmp_path):
    path, gen, _ = bench
    out = tmp_path / "out"
    code = main(
        ["--bench", str(path), "--generated", str(gen), "--out", str(out), "--no-quality"], analyzer=FakeAnalyzer()
    )
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    cases = {c["id"]: c for c in doc["cases"]}
    ref = np.stack([COLORS[REF_A], COLORS[REF_B]])
    gt = np.stack([COLORS[GT_A], COLORS[GT_B]])
    gen_ab = np.stack([COLORS[GEN_A], COLORS[GEN_B]])
    # independent reference values: cosine of the known embeddings of the matched pairs
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    want_gt = (cos(gen_ab[0], gt[0]) + cos(gen_ab[1], gt[1])) / 2
    want_ref = (cos(gen_ab[0], ref[0]) + cos(gen_ab[1], ref[1])) / 2
    want_cp = np.mean([metrics.copy_paste_score(gen_ab[i], gt[i], ref[i]) for i in range(2)])
    for cid in ("num_2_0001", "0002"):
        assert cases[cid]["sim_gt"] == pytest.approx(want_gt)
        assert cases[cid]["sim_ref"] == pytest.approx(want_ref)
        assert cases[cid]["copy_paste"] == pytest.approx(want_cp)
        assert cases[cid]["clip_t"] is None
    # reference face boxes are mapped back from the padded image
    assert cases["num_2_0001"]["reference_faces"][0]["box"] == [30, 20, 80, 80]
    # placement: target boxes scaled by 0.5 from GT pixels
    assert cases["num_2_0001"]["target_boxes"] == [[20, 20, 60, 70], [120, 20, 160, 70]]
    ok = cases["num_2_0001"]["placement"]["identities"]
    assert [(p["in_box"], p["iou"]) for p in ok] == [(True, 1.0), (True, 1.0)]
    swapped = cases["0002"]["placement"]["identities"]
    assert [(p["in_box"], p["in_box_of"], p["iou"]) for p in swapped] == [(False, 2, 0.0), (False, 1, 0.0)]
    lost = cases["lost"]
    assert lost["generated"] is None and lost["sim_gt"] is None and not lost["bench_kept"]
    assert lost["placement"]["identities"][0]["missing"]
    # summary: the bench drops the missing generation; placement counts it as a miss
    s = doc["summary"]
    assert (s["cases"], s["bench_kept"], s["bench_dropped"]) == (3, 2, 1)
    assert s["bench"]["sim_gt"]["mean"] == pytest.approx(want_gt) and s["bench"]["sim_gt"]["count"] == 2
    assert s["bench"]["clip_i"] is None
    p = s["placement"]
    assert (p["identities"], p["in_box_rate"], p["missing_rate"], p["wrong_box_rate"]) == (5, 0.4, 0.2, 0.4)
    assert p["perfect_case_rate"] == pytest.approx(1 / 3)
    assert doc["notes"] == ["CLIP-I/CLIP-T/Aes: n/a — quality scoring was not requested"]

    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["num_2_0001", "0002", "lost"]
    assert rows[0]["in_box"] == "2/2" and rows[1]["in_box"] == "0/2" and rows[2]["sim_gt"] == "n/a"
    assert float(rows[0]["sim_ref"]) == pytest.approx(want_ref, abs=1e-4)

    report = (out / "report.html").read_text()
    assert "Sim(GT)" in report and "<svg" in report and "generated image not found" in report
    links = [part.split("'")[0] for part in report.split("src='")[1:]]
    assert len(links) == 2 * 4 + 1 + 1  # 2 refs + gen + GT per found case; 1 ref + GT for the lost one
    assert all((out / link).is_file() for link in links)
    with Image.open(out / "report_files" / "num_2_0001_gen.jpg") as im:
        assert im.size == (200, 100)


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    code = main(
        [
            "--bench",
            str(tmp_path / "none.json"),
            "--generated",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--no-quality",
        ],
        analyzer=FakeAnalyzer(),
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err
    code = main(["--bench", "b.json", "--generated", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2 and "--models is required" in capsys.readouterr().err


def test_quality_scorers_missing_models_are_na(tmp_path):
    scorers = load_quality_scorers(tmp_path)
    assert scorers.clip is None and scorers.aesthetic_model is None
    assert any("CLIP-I/CLIP-T: n/a" in n for n in scorers.notes)
    assert scorers.clip_t(Image.new("RGB", (8, 8)), "x") is None


def _tiny_clip(folder: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": 64,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=8,
    )
    transformers.CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    chars = list("abcdefghijklmnopqrstuvwxyz")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def test_clip_scores_from_local_tiny_model(tmp_path):
    torch = pytest.importorskip("torch")
    folder = tmp_path / "clip-vit-base-patch16"
    folder.mkdir()
    _tiny_clip(folder)
    scorer = load_quality_scorers(tmp_path).clip
    assert isinstance(scorer, ClipScorer)
    rng = np.random.default_rng(0)
    a = Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    b = Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    assert scorer.image_similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    # reference: CLIPModel's own forward returns normalised image/text embeddings
    inputs = scorer.processor(text=["a cat"], images=[a, b], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = scorer.model(**inputs)
    img_e, txt_e = out.image_embeds.numpy(), out.text_embeds.numpy()
    assert scorer.image_similarity(a, b) == pytest.approx(float(img_e[0] @ img_e[1]), abs=1e-5)
    assert scorer.text_similarity(b, "a cat") == pytest.approx(float(img_e[1] @ txt_e[0]), abs=1e-5)


def test_clip_broken_folder_is_a_clear_error(tmp_path):
    pytest.importorskip("transformers")
    folder = tmp_path / "clip-vit-base-patch16"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot be loaded"):
        load_quality_scorers(tmp_path)
