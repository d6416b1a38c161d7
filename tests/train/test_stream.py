"""Data stream: positions per process and step, re-sharding on resume with another world size or accumulation
(1 process -> 2 processes), and the prefetching DataLoader giving the very samples built in-process."""

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.launch import accelerate_two

from train.config import DataConfig
from train.dataset import SampleBuilder
from train.degradations import DEGRADATIONS
from train.manifest import read_manifest
from train.stream import StreamLayout, sample_loader
from train.trainer import Trainer


@pytest.mark.parametrize(("world", "accumulation"), [(1, 1), (2, 1), (1, 3), (2, 2)])
def test_each_step_takes_the_next_global_batch_once(world, accumulation):
    layout = StreamLayout(world, accumulation)
    g = world * accumulation
    for step in range(3):
        got = sorted(layout.position(step, m, r) for m in range(accumulation) for r in range(world))
        assert got == list(range(step * g, (step + 1) * g))
    resumed = StreamLayout(world, accumulation, start=10, start_step=4)
    assert sorted(resumed.position(5, m, r) for m in range(accumulation) for r in range(world)) == list(
        range(10 + g, 10 + 2 * g)
    )


def test_resume_with_other_accumulation_continues_the_stream(tiny_config, frozen_models, tmp_path):
    """2 steps x 1 sample, checkpoint; resumed with accumulation 2: steps 2 and 3 take samples 2..5."""
    first = Trainer(tiny_config("run.steps=2", f"run.output={tmp_path}"), models=frozen_models)
    first.fit()
    first.save()
    second = Trainer(tiny_config("run.steps=4", "optim.accumulation=2", f"run.output={tmp_path}"), models=frozen_models)
    assert second.resume() and second.step == 2
    assert [second.position(s, m) for s in (2, 3) for m in (0, 1)] == [2, 3, 4, 5]


def test_resume_on_two_processes_reshards(tiny_config, tiny_cli_args, frozen_models, tmp_path):
    """1 process trains 2 steps and checkpoints; 2 accelerate processes resume it and train steps 2-3: together
    they take samples 2, 3, 4, 5 (rank 0 the even ones), none skipped or repeated."""
    config, overrides = tiny_cli_args
    run = tmp_path / "run"
    first = Trainer(tiny_config("run.steps=2", f"run.output={run}"), models=frozen_models)
    first.fit()
    first.save()
    worker = Path(__file__).with_name("resume_worker.py")
    proc = accelerate_two(worker, str(tmp_path), config, *overrides, "run.steps=4")
    used = [sorted(set(json.loads((tmp_path / f"positions{r}.json").read_text()))) for r in range(2)]
    assert used == [[2, 4], [3, 5]], used
    assert "re-sharded and continues at sample 2" in proc.stderr


def test_loader_workers_build_the_same_samples_in_order(tiny_manifest):
    cfg = DataConfig(resolution=64, crop_size=112, degradations={k: 0.3 for k in DEGRADATIONS})
    builder = SampleBuilder(read_manifest(tiny_manifest), cfg, seed=3)
    keys = [(p, s) for s, p in enumerate([5, 0, 3, 1, 7, 2])]
    direct = list(sample_loader(builder, keys, workers=0, prefetch=1))
    loaded = list(sample_loader(builder, keys, workers=2, prefetch=2))
    assert len(loaded) == len(direct) == len(keys)
    for a, b in zip(direct, loaded, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.keep, b.keep)
        assert a.identities == b.identities and a.caption == b.caption
        for ca, cb in zip(a.canvases, b.canvases, strict=True):
            np.testing.assert_array_equal(ca.image, cb.image)
