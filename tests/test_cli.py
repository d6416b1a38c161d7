"""``anyphoto generate`` end to end on the tiny models, and its one-line errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.face_models import insightface_image
from PIL import Image

from anyphoto_core.app import cli
from anyphoto_core.app.cli import build_parser, main, parse_person, prepare_inputs
from anyphoto_core.app.models.tiny import ensure_tiny_models

T1 = str(insightface_image("t1.jpg"))
FAST = ["--size", "96x64", "--steps", "2", "--builtin", "tiny"]


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
        (["--person", f"{T1}#1@0.1,0.1,0.4,0.5", "--person", f"{T1}#2@0.5,0.1,1.3,0.5"], "mix fractions and pixels"),
        (["--person", f"{T1}#7@0.1,0.1,0.4,0.5"], "face 7 (counted from the left, the first face is 1)"),
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


def test_no_face_found(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_pipeline", lambda *a: pytest.fail("models were loaded before the face check"))
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


def _args(*extra):
    return build_parser().parse_args(["generate", *extra])


def _t1_faces_left_to_right(centerface_detector):
    from anyphoto_core.faces import load_photo

    return sorted(centerface_detector.detect(load_photo(T1)), key=lambda d: (d.box[0] + d.box[2]) / 2)


def test_face_number_applies_to_its_own_photo_only(centerface_detector):
    faces = _t1_faces_left_to_right(centerface_detector)
    largest = max(faces, key=lambda d: d.area)
    _, (first, second), *_ = prepare_inputs(
        _args("--person", f"{T1},{T1}#2@0.1,0.1,0.4,0.5", "--person", f"{T1}#5,{T1}@0.5,0.1,0.9,0.5"), False, (96, 64)
    )
    np.testing.assert_allclose(first.faces[0].box, largest.box)  # no #K: the largest face
    np.testing.assert_allclose(first.faces[1].box, faces[1].box)  # #2 = second from the left
    np.testing.assert_allclose(second.faces[0].box, faces[4].box)  # #5
    np.testing.assert_allclose(second.faces[1].box, largest.box)  # the #5 of photo 1 is not applied here


def test_out_folder_gets_a_file_and_existing_outputs_are_kept(tmp_path, capsys):
    folder = tmp_path / "results"
    assert main(["generate", "--out", f"{folder}/", *FAST]) == 0
    assert (folder / "anyphoto.png").is_file() and (folder / "anyphoto.json").is_file()
    assert main(["generate", "--out", str(folder), *FAST]) == 2  # now existing folder: same file, refused
    err = capsys.readouterr().err
    assert f"error: --out {folder / 'anyphoto.png'}: {folder / 'anyphoto.png'}" in err and "--overwrite" in err
    assert main(["generate", "--out", str(folder), "--overwrite", *FAST]) == 0


@pytest.mark.parametrize(
    "out,message",
    [("results.txt", "unknown image type '.txt'"), ("noext", "unknown image type '(no extension)'")],
)
def test_bad_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch, out, message):
    monkeypatch.setattr(cli, "load_analyzer", lambda *a: pytest.fail("faces were analysed before --out was checked"))
    assert main(["generate", "--out", str(tmp_path / out), *FAST]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--person", T1], "has no box"),
        (["--person", f"{T1}@0.1,0.1,0.4,0.5", "--person", f"{T1}@1.2,0.1,1.5,0.5"], "mix fractions and pixels"),
        (["--person", f"{T1}#9@0.1,0.1,0.4,0.5"], "face 9"),
    ],
)
def test_input_errors_come_before_model_loading(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setattr(cli, "load_pipeline", lambda *a: pytest.fail("models were loaded before the input check"))
    assert main(["generate", "--out", str(tmp_path / "o.png"), *FAST, *extra]) == 2
    assert message in capsys.readouterr().err


def _adapter_with_rule(path: Path, rule: str) -> Path:
    from dataclasses import replace

    from anyphoto_core.adapter import AnyPhotoAdapter
    from anyphoto_core.app.models.tiny import tiny_adapter_config

    AnyPhotoAdapter(replace(tiny_adapter_config(), token_rule=rule)).save(path)
    return path


def test_early_token_check_uses_the_adapters_rule(tmp_path, capsys, monkeypatch):
    # a 2 px box in the corner: its face covers 94% of one token, kept by "majority" but not by "all"
    adapter = _adapter_with_rule(tmp_path / "all.safetensors", "all")
    monkeypatch.setattr(cli, "load_pipeline", lambda *a: pytest.fail("models were loaded before the token check"))
    person = ["--person", f"{T1}#1@0,0,2,2", "--adapter", str(adapter)]
    assert main(["generate", "--out", str(tmp_path / "o.png"), *FAST, *person]) == 2
    err = capsys.readouterr().err
    assert "person 1:" in err and "rule 'all'" in err and "Traceback" not in err


def test_adapter_token_rule_comes_from_the_file_that_will_load(tmp_path):
    from anyphoto_core.adapter import read_adapter_config
    from anyphoto_core.app.models import ModelFiles
    from anyphoto_core.app.models.miniworld import MINIWORLD_DIR

    shipped = read_adapter_config(MINIWORLD_DIR / "adapter.safetensors").token_rule  # the shipped MiniWorld adapter's
    assert cli.adapter_token_rule(_args(), ("miniworld", None)) == shipped
    assert cli.adapter_token_rule(_args(), ("tiny", None)) == "majority"  # the tiny set's own adapter
    given = _adapter_with_rule(tmp_path / "all.safetensors", "all")
    assert cli.adapter_token_rule(_args("--adapter", str(given)), ("tiny", None)) == "all"
    assert cli.adapter_token_rule(_args(), ("files", ModelFiles(adapter=given))) == "all"
    with pytest.raises(cli.UsageError, match="no AnyPhoto adapter was found"):
        cli.adapter_token_rule(_args(), ("files", ModelFiles()))
