"""``anyphoto generate`` end to end on the tiny models, and its one-line errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.face_models import insightface_image
from PIL import Image

from anyphoto_core.app.cli import main, parse_person
from anyphoto_core.app.models.tiny import ensure_tiny_models

T1 = str(insightface_image("t1.jpg"))
FAST = ["--size", "96x64", "--steps", "2"]


@pytest.fixture(autouse=True)
def tiny_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "anyphoto-cache"
    ensure_tiny_models(cache / "tiny" / "v1")
    monkeypatch.setenv("ANYPHOTO_CACHE", str(cache))
    return cache


def test_demo_runs_and_writes_png_preview_and_json(tmp_path):
    out = tmp_path / "demo.png"
    assert main(["generate", "--out", str(out), *FAST]) == 0
    with Image.open(out) as im:
        assert im.size == (96, 64) and im.format == "PNG"
    with Image.open(tmp_path / "demo_preview.png") as prev:
        assert prev.height == 64 and prev.width > 2 * 96
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["tiny_model"] is True and report["demo"] is True and len(report["people"]) == 2
    assert report["steps"] == 2 and report["size"] == [96, 64] and "sampling" in report["timings_s"]


def test_entry_point_subprocess(tmp_path, tiny_cache):
    env = dict(os.environ, ANYPHOTO_CACHE=str(tiny_cache))
    out = tmp_path / "x.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "anyphoto_core",
            "generate",
            "--out",
            str(out),
            *FAST,
            "--person",
            f"{T1}#2@0.1,0.1,0.45,0.9",
        ],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "NOT meaningful" in proc.stderr and out.is_file()


def test_person_syntax():
    spec = parse_person("a.jpg#2,b.jpg@0.1,0.2,0.3,0.4", 1)
    assert [(p.name, k) for p, k in spec.photos] == [("a.jpg", 1), ("b.jpg", None)]
    assert spec.box == (0.1, 0.2, 0.3, 0.4)
    assert parse_person("a.jpg@layout:3", 1).layout_index == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--person", "/nonexistent/face.jpg@0.1,0.1,0.4,0.5"], "does not exist"),
        (["--person", f"{T1}@10,10,2000,300"], "outside"),
        (["--person", T1], "has no box"),
        (["--person", f"{T1}@0.1,0.1,0.4,0.5", "--person", f"{T1}@layout:9", "--layout-photo", T1], "only"),
        (["--person", "x@1,2"], "box"),
        (["--size", "100x64", "--person", f"{T1}@0.1,0.1,0.4,0.5"], "multiples of 16"),
    ],
)
def test_bad_input_one_line_error(tmp_path, capsys, extra, message):
    code = main(["generate", "--out", str(tmp_path / "o.png"), "--steps", "1", *extra])
    err = capsys.readouterr().err
    assert code == 2
    line = [s for s in err.splitlines() if s.startswith("error:")]
    assert len(line) == 1 and message in line[0] and "Traceback" not in err


def test_no_face_found(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    assert main(["generate", "--out", str(tmp_path / "o.png"), *FAST, "--person", f"{blank}@0.1,0.1,0.5,0.6"]) == 2
    assert "no face found" in capsys.readouterr().err


def test_overlapping_boxes_warn(tmp_path, capsys):
    args = ["--person", f"{T1}#1@0.1,0.1,0.5,0.8", "--person", f"{T1}#2@0.15,0.1,0.55,0.8"]
    assert main(["generate", "--out", str(tmp_path / "o.png"), *FAST, *args]) == 0
    assert "overlap" in capsys.readouterr().err


def test_adapter_for_another_hidden_size(tmp_path, capsys):
    from anyphoto_core.adapter import AdapterConfig, AnyPhotoAdapter

    path = tmp_path / "big.safetensors"
    AnyPhotoAdapter(
        AdapterConfig(hidden_size=128, mlp_hidden_dim=512, depth=1, depth_single_blocks=1, rank=2, projector_hidden=8)
    ).save(path)
    assert main(["generate", "--out", str(tmp_path / "o.png"), *FAST, "--adapter", str(path)]) == 2
    err = capsys.readouterr().err
    assert "hidden_size=128" in err and "Traceback" not in err
