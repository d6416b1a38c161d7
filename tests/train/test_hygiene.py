"""Config validation, checkpoint retention, ``--resume`` semantics, file modes, packaging, memory-mapped weights."""

import fnmatch
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from anyphoto_core.adapter import AdapterConfig, AnyPhotoAdapter
from anyphoto_core.flux import read_safetensors
from train import checkpoint as ckpt_module
from train.__main__ import main
from train.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "train" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(config):
    load_config(config)


@pytest.mark.parametrize(
    "override",
    [
        "optim.lr=0",
        "optim.lr=-1e-4",
        "loss.face_weight=-0.1",
        "loss.nce_weight=-1",
        "run.keep_checkpoints=0",
        "data.id_dropout=1.0",
        "data.resolution=500",
        "data.token_rule=most",
        "optim.betas=[0.9]",
        "optim.warmup_steps=-1",
        "run.mixed_precision=fp8",
        "data.degradations={blur: 1.5}",
    ],
)
def test_bad_config_value_is_a_clear_error(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key} must be .*got"):
        load_config(None, [override])


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["optim.lr=0", "loss.face_weight=-1"])
    assert "optim.lr" in str(info.value) and "loss.face_weight" in str(info.value)


def _adapter():
    return AnyPhotoAdapter(AdapterConfig(hidden_size=8, mlp_hidden_dim=16, depth=1, depth_single_blocks=1, rank=2))


def test_keep_zero_checkpoints_is_refused(tmp_path):
    adapter = _adapter()
    opt = torch.optim.AdamW(adapter.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    with pytest.raises(ValueError, match="keep must be >= 1"):
        ckpt_module.save_checkpoint(tmp_path, 1, adapter, opt, sched, {}, keep=0)


def test_adapter_and_checkpoint_files_are_world_readable(tmp_path):
    """Under umask 022 every output file is 0644 (safetensors alone creates 0600)."""
    old = os.umask(0o022)
    try:
        adapter = _adapter()
        adapter.save(tmp_path / "adapter.safetensors")
        opt = torch.optim.AdamW(adapter.parameters())
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        ckpt = ckpt_module.save_checkpoint(tmp_path / "ckpt", 3, adapter, opt, sched, {})
    finally:
        os.umask(old)
    files = [tmp_path / "adapter.safetensors", *sorted(ckpt.iterdir())]
    assert len(files) == 6
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o644" for f in files}


def test_resume_without_checkpoint_is_an_error_unless_auto(tmp_path, capsys):
    """``--resume`` with nothing to resume from stops before any model is loaded; ``auto`` starts fresh."""
    from train.__main__ import _resume_checkpoint

    root = tmp_path / "run" / "checkpoints"
    code = main(["fit", "--resume", "run.output=" + str(tmp_path / "run"), "model.kind=tiny"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no checkpoint under" in err and "--resume auto" in err
    assert _resume_checkpoint(None, root) is None
    assert _resume_checkpoint("auto", root) is None
    with pytest.raises(ckpt_module.CheckpointError, match="no such checkpoint folder"):
        _resume_checkpoint(str(tmp_path / "nope"), root)
    (root / "step-00000005").mkdir(parents=True)
    (root / "latest").write_text("step-00000005")
    assert _resume_checkpoint("auto", root) == _resume_checkpoint("latest", root) == root / "step-00000005"


def test_bad_config_on_the_command_line_is_a_message_not_a_traceback(capsys):
    assert main(["fit", "optim.lr=-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid config") and "optim.lr must be > 0" in err and "Traceback" not in err


def test_trainer_is_not_installed_as_a_top_level_train_package():
    """``pyproject`` must not ship ``train`` (a ``train.py`` in the working folder would shadow it, and it would
    shadow any other ``train``); ``python -m train`` still works from the repo root."""
    text = (REPO / "pyproject.toml").read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("include"))
    patterns = [p.strip().strip('"') for p in line.split("[", 1)[1].split("]", 1)[0].split(",")]
    assert patterns and not any(fnmatch.fnmatch("train", p) for p in patterns), patterns
    assert any(fnmatch.fnmatch("anyphoto_core", p) for p in patterns)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "train", "--help"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "preprocess" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs /proc (Linux)")
def test_weights_are_memory_mapped_not_copied(tmp_path):
    """Every tensor is a view of one private mapping of the file (the page cache holds the weights once per
    machine), and equals what safetensors reads; an unaligned tensor is copied, still equal."""
    path = tmp_path / "weights.safetensors"
    tensors = {
        "a": torch.randn(3, 4),
        "b": torch.randn(5).bfloat16(),
        "c": torch.arange(7, dtype=torch.int8),
        "d": torch.randn(2, 2).half(),
        "e": torch.zeros(0, 3),
    }
    save_file(tensors, str(path))
    read, ref = read_safetensors(path), load_file(str(path))
    for k, v in ref.items():
        assert read[k].dtype == v.dtype and torch.equal(read[k], v), k
    assert str(path) in Path("/proc/self/maps").read_text()
    assert read["a"].untyped_storage().data_ptr() == read["b"].untyped_storage().data_ptr()


def test_adapter_names_the_recognizer_that_embedded_the_manifest(
    tiny_config, frozen_models, tiny_manifest, recognizer_path, tmp_path
):
    """The adapter's ``recognizer`` metadata is the manifest's record; a face-loss recognizer that is another file
    than the one that embedded the manifest is an error."""
    from dataclasses import replace

    from anyphoto_core.adapter import read_adapter_config
    from train.manifest import ManifestError, RecognizerRecord, read_manifest, write_manifest
    from train.trainer import Trainer

    base = read_manifest(tiny_manifest)
    path = tmp_path / "manifest.jsonl"
    write_manifest(path, replace(base, recognizer=RecognizerRecord.of_file("glintr100-test", recognizer_path)))
    trainer = Trainer(tiny_config(f"data.manifest={path}", "run.steps=0"), models=frozen_models)
    assert read_adapter_config(trainer.export(tmp_path / "a.safetensors")).recognizer == "glintr100-test"
    write_manifest(path, replace(base, recognizer=RecognizerRecord("other", "0" * 64)))
    with pytest.raises(ManifestError, match="embedded by other .*another file"):
        Trainer(tiny_config(f"data.manifest={path}"), models=frozen_models)
