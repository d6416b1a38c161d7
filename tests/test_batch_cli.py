"""``anyphoto batch`` on the tiny models: one model load, images equal to ``anyphoto generate``'s, resume,
failed jobs, bad input, and two processes under ``accelerate launch`` sharing the jobs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.face_models import insightface_image
from fixtures.launch import accelerate_two
from PIL import Image
from test_cli import tiny_cache  # noqa: F401  (autouse: the tiny models in a test cache)

from anyphoto_core.app.batch import Shard
from anyphoto_core.app.cli import main
from anyphoto_core.app.pipeline import AnyPhotoPipeline
from anyphoto_core.headless.ledger import LEDGER_NAME

REPO = Path(__file__).resolve().parents[1]
FAST = ["--size", "96x64", "--steps", "2", "--no-progress"]
BOX = [0.1, 0.1, 0.45, 0.9]


@pytest.fixture
def counted(monkeypatch):
    """Counts of pipeline loads and of generations."""
    counts = {"loads": 0, "generations": 0}
    tiny, generate = AnyPhotoPipeline.tiny.__func__, AnyPhotoPipeline.generate

    def counting_tiny(cls, *args, **kwargs):
        counts["loads"] += 1
        return tiny(cls, *args, **kwargs)

    def counting_generate(self, *args, **kwargs):
        counts["generations"] += 1
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(AnyPhotoPipeline, "tiny", classmethod(counting_tiny))
    monkeypatch.setattr(AnyPhotoPipeline, "generate", counting_generate)
    return counts


def write_jobs(folder: Path, jobs: list[dict]) -> Path:
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_batch_one_load_equals_generate_and_resumes(tmp_path, counted, capsys):
    Image.new("RGB", (64, 64), "white").save(tmp_path / "blank.png")  # no face: that job fails
    photo = insightface_image("t1.jpg")
    jobs = write_jobs(
        tmp_path,
        [
            {"prompt": "two friends", "seed": 1, "people": [{"photos": [str(photo)], "box": BOX}]},
            {"prompt": "an empty park", "seed": 2, "name": "park"},
            {"seed": 3, "people": [{"photos": ["blank.png"], "box": BOX}]},
        ],
    )
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "job 3 (job0003) failed" in err and "rerun the same command" in err
    assert counted == {"loads": 1, "generations": 2}
    assert sorted(p.name for p in out.glob("*.png")) == ["job0001.png", "park.png"]

    reference = tmp_path / "ref.png"  # the same job through `anyphoto generate`
    args = ["generate", "--out", str(reference), *FAST[:-1], "--seed", "1", "--prompt", "two friends"]
    args += ["--builtin", "tiny"]  # batch runs FLUX or the tiny set; generate defaults to the MiniWorld set
    assert main([*args, "--person", f"{photo}@{','.join(map(str, BOX))}"]) == 0
    np.testing.assert_array_equal(pixels(out / "job0001.png"), pixels(reference))

    counted.update(loads=0, generations=0)
    park = pixels(out / "park.png")
    (out / "park.png").unlink()
    assert main(["batch", str(jobs), "--out", str(out), *FAST]) == 1  # job 3 still has no face
    assert counted == {"loads": 1, "generations": 1}  # only the deleted image was made again
    np.testing.assert_array_equal(pixels(out / "park.png"), park)
    records = [json.loads(line) for line in (out / LEDGER_NAME).read_text().splitlines()]
    assert [r["index"] for r in records] == [1, 2, 2] and all(r["by"] == "process 0/1" for r in records)


def test_batch_bad_input_is_refused_before_loading(tmp_path, counted, capsys):
    jobs = write_jobs(tmp_path, [{"name": "a"}, {"name": "a"}])
    assert main(["batch", str(jobs), "--out", str(tmp_path / "out")]) == 2
    assert "job names must be unique" in capsys.readouterr().err
    jobs = write_jobs(tmp_path, [{"seed": 1}, {"people": [{"photos": ["nope.jpg"], "box": BOX}]}])
    assert main(["batch", str(jobs), "--out", str(tmp_path / "out")]) == 2
    assert "jobs.jsonl:2: person 1: photo" in capsys.readouterr().err
    jobs = write_jobs(tmp_path, [{"width": 100}])
    assert main(["batch", str(jobs), "--out", str(tmp_path / "out")]) == 2
    assert "width 100 must be a positive multiple of 16" in capsys.readouterr().err
    assert counted["loads"] == 0


def test_shard_split_depends_only_on_job_numbers():
    shards = [Shard(rank, 3) for rank in range(3)]
    owners = [[s.rank for s in shards if s.takes(index)] for index in range(1, 10)]
    assert owners == [[0], [1], [2]] * 3


def test_two_processes_under_accelerate_share_the_jobs(tmp_path):
    jobs = write_jobs(tmp_path, [{"prompt": f"scene {i}", "seed": i} for i in range(1, 5)])
    # ANYPHOTO_CACHE (the tiny models): set by the tiny_cache fixture, inherited by the processes
    accelerate_two("-m", "anyphoto_core", "batch", str(jobs), "--out", str(tmp_path / "out"), *FAST, timeout=400)
    records = [json.loads(line) for line in (tmp_path / "out" / LEDGER_NAME).read_text().splitlines()]
    by_index = {r["index"]: r["by"] for r in records}
    assert len(records) == 4 and by_index == {1: "process 0/2", 2: "process 1/2", 3: "process 0/2", 4: "process 1/2"}

    single = tmp_path / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the launched processes (OMP_NUM_THREADS=1): the same float summation order
    try:
        assert main(["batch", str(jobs), "--out", str(single), *FAST]) == 0
    finally:
        torch.set_num_threads(threads)
    for i in range(1, 5):  # each process made the same image one process makes
        np.testing.assert_array_equal(pixels(tmp_path / "out" / f"job{i:04d}.png"), pixels(single / f"job{i:04d}.png"))
