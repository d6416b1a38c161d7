"""Two CPU processes through ``accelerate launch`` (DDP, gloo): they train a few steps and agree on parameters,
also when one rank's sample has no identity token at all; with ``model.shard_flux`` the frozen FLUX is split
across them (FSDP2 ``fully_shard``) while the adapter stays under DDP, and they match one process with
accumulation 2 (the same global batch)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from anyphoto_core.tokens import token_keep_mask
from train.config import ConfigError, load_config
from train.dataset import SampleBuilder
from train.manifest import FaceAnnotation, ImageRecord, Manifest, read_manifest, write_manifest
from train.trainer import LOSS_TERMS, Trainer

REPO = Path(__file__).resolve().parents[2]


ACCELERATE_CONFIGS = REPO / "train" / "configs" / "accelerate"


def launcher(out: Path, config: str, overrides: list[str], *launcher_args: str) -> list[str]:
    """``accelerate launch`` of ``ddp_worker.py`` on CPU (torchrun underneath, gloo)."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *launcher_args,
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(Path(__file__).with_name("ddp_worker.py")),
        str(out),
        config,
        *overrides,
    ]


ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]), OMP_NUM_THREADS="1")


def launch(out: Path, config: str, overrides: list[str], timeout: int = 480) -> subprocess.CompletedProcess:
    """Run ``ddp_worker.py`` in 2 CPU processes on one machine; fail the test on error."""
    cmd = launcher(
        out, config, overrides, "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", "0"
    )
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def assert_ranks_log_the_same_terms(out: Path) -> list[dict]:
    """Both ranks log the all-reduced terms (their samples differ, so unreduced terms would differ)."""
    histories = [json.loads((out / f"history{i}.json").read_text()) for i in range(2)]
    for step0, step1 in zip(*histories, strict=True):
        terms = {k for k in step0 if k in LOSS_TERMS}
        assert "loss" in terms and terms == {k for k in step1 if k in LOSS_TERMS}
        assert all(step0[k] == step1[k] for k in terms), (step0, step1)
    return histories[0]


def assert_ranks_agree_and_moved(out: Path) -> None:
    ranks = [load_file(out / f"rank{i}.safetensors") for i in range(2)]
    initial = load_file(out / "initial.safetensors")
    assert ranks[0].keys() == ranks[1].keys() == initial.keys()
    for k in initial:
        assert torch.equal(ranks[0][k], ranks[1][k]), k
    assert any(not torch.equal(ranks[0][k], initial[k]) for k in initial)


def test_two_cpu_processes_agree(tiny_cli_args, tmp_path):
    config, overrides = tiny_cli_args
    proc = launch(tmp_path, config, [*overrides, "run.steps=3", "optim.lr=1e-2"])
    assert_ranks_agree_and_moved(tmp_path)
    assert_ranks_log_the_same_terms(tmp_path)
    with safe_open(str(tmp_path / "rank1.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta == {"world": "2", "global_batch": "2", "wrapper": "DistributedDataParallel"}
    assert "global batch = 1 per GPU x 2 GPUs x 1 accumulation = 2" in proc.stdout


def zero_token_manifest(tiny_manifest: Path, folder: Path) -> Path:
    """The tiny set's two-face photo plus the same photo annotated with one face whose landmarks span 6 px
    inside a 300 px box: the square crop follows the box, so at 64 px the pasted face (clamped to the
    canvas's smallest scale, 7 px) covers under half of any 16 px token cell and prunes to 0 tokens."""
    manifest = read_manifest(tiny_manifest)
    two_faces = next(r for r in manifest.images if len(r.faces) == 2)
    centre = np.array([400.0, 300.0])
    tiny = centre + np.array([[-2, -2], [2, -2], [0, 0], [-1.5, 2], [1.5, 2]], float) * 1.5
    face = FaceAnnotation("left", np.array([250.0, 150.0, 550.0, 450.0]), tiny)
    empty = ImageRecord(two_faces.image, "a tiny face", (face,))
    path = folder / "zero_tokens.jsonl"
    write_manifest(path, Manifest(manifest.galleries, (two_faces, empty)))
    return path


def test_sample_without_identity_tokens_does_not_stop_ddp(tiny_cli_args, tiny_manifest, tmp_path):
    """Rank 0 and rank 1 alternate between a sample with identity tokens and one whose only identity prunes
    to 0 tokens (its LoRA layers never run); with identity dropout on, some steps also drop every identity."""
    config, overrides = tiny_cli_args
    manifest_path = zero_token_manifest(tiny_manifest, tmp_path)
    extra = [f"data.manifest={manifest_path}", "data.token_rule=majority", "data.id_dropout=0.5"]
    # precondition: the built sample really has no identity token (same data code as the workers)
    cfg = load_config(config, [*overrides, *extra])
    builder = SampleBuilder(read_manifest(manifest_path), cfg.data, seed=cfg.run.seed)
    counts = {}
    for pos in range(8):
        sample = builder.build(pos, 0)
        counts[len(sample.identities)] = sum(int(token_keep_mask(c.mask, "majority").sum()) for c in sample.canvases)
    assert counts[1] == 0 and counts[2] > 0, counts
    launch(tmp_path, config, [*overrides, *extra, "run.steps=3", "optim.lr=1e-2"])
    assert_ranks_agree_and_moved(tmp_path)
    assert_ranks_log_the_same_terms(tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_multi_node_config_with_two_machines_of_one_process(tiny_cli_args, tmp_path):
    """``train/configs/accelerate/multi_node.yaml`` as two "machines" of one CPU process each on localhost
    (machine ranks 0 and 1, static rendezvous at 127.0.0.1): they train together and agree."""
    config, overrides = tiny_cli_args
    port = str(free_port())
    procs = [
        subprocess.Popen(
            launcher(
                tmp_path,
                config,
                [*overrides, "run.steps=2", "optim.lr=1e-2"],
                *("--config_file", str(ACCELERATE_CONFIGS / "multi_node.yaml")),
                *("--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank)),
                *("--main_process_ip", "127.0.0.1", "--main_process_port", port),
            ),
            cwd=REPO,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    logs = [p.communicate(timeout=480)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert_ranks_agree_and_moved(tmp_path)
    assert_ranks_log_the_same_terms(tmp_path)


#: Float32 on the same samples; only the order of reductions may differ (DDP's mean over 2 ranks vs
#: accelerate's sum of 2 halves; the all-gathered weights are the same bits). Measured here: bit-equal (0).
RTOL, ATOL = 1e-5, 1e-6

SHARD_STEPS = ("run.steps=3", "optim.lr=1e-2", "model.gradient_checkpointing=true", "run.checkpoint_every=3")


def test_sharded_flux_matches_one_process_with_accumulation(tiny_cli_args, tiny_config, frozen_models, tmp_path):
    """Checks (a) sharding, (b) losses, (c) adapter, (d) resume, (e) preview grid; every failing one is reported."""
    config, overrides = tiny_cli_args
    run = tmp_path / "sharded"
    # a preview grid after step 2 (every rank must take part in its FLUX calls); step 3 trains after it, so (a)
    # still sees what a training step leaves gathered
    preview = ["run.sample_every=2", "run.sample_steps=2"]
    launch(tmp_path, config, [*overrides, *SHARD_STEPS, *preview, "model.shard_flux=true", f"run.output={run}"])
    reports = [json.loads((tmp_path / f"sharding{i}.json").read_text()) for i in range(2)]
    histories = [json.loads((tmp_path / f"history{i}.json").read_text()) for i in range(2)]
    ranks = [load_file(tmp_path / f"rank{i}.safetensors") for i in range(2)]
    reference = Trainer(tiny_config(*SHARD_STEPS, "optim.accumulation=2"), models=frozen_models)
    initial = {k: v.detach().clone() for k, v in reference.adapter.adapter_state_dict().items()}
    expected = reference.fit()
    want = {k: v.detach() for k, v in reference.adapter.adapter_state_dict().items()}
    failures = {}

    def sharded():
        """(a) every linear weight and bias of FLUX is a DTensor sharded on dim 0 (the RMSNorm scales stay whole),
        each rank holds about half of FLUX; FSDP all-gathered, and reduce-scattered nothing (FLUX is frozen)."""
        for report in reports:
            params = report["parameters"]
            linears = {k: v for k, v in params.items() if not k.endswith(".scale")}
            assert len(linears) > 40 and all(v["placements"] == ["S(0)"] for v in linears.values()), linears
            assert all(v["placements"] is None for k, v in params.items() if k.endswith(".scale"))
            local, total = sum(v["local"] for v in params.values()), sum(v["global"] for v in params.values())
            assert 0.49 < local / total < 0.52, (local, total)
            counts = report["collectives"]
            assert counts.get("_allgather_base_", 0) > 0, counts
            assert not [op for op in counts if "reduce_scatter" in op], counts

    def same_losses():
        """(b) per-step loss terms: 2 sharded processes x 1 sample == 1 process x accumulation 2."""
        for rank_history in histories:
            assert len(rank_history) == len(expected) == 3
            for got, ref in zip(rank_history, expected, strict=True):
                terms = [k for k in LOSS_TERMS if k in ref]
                assert "face" in terms and terms == [k for k in LOSS_TERMS if k in got]
                torch.testing.assert_close(
                    torch.tensor([got[k] for k in terms]), torch.tensor([ref[k] for k in terms]), rtol=RTOL, atol=ATOL
                )

    def same_adapter():
        """(c) the adapter after the steps: both ranks equal, equal to the reference, and trained."""
        assert ranks[0].keys() == want.keys()
        for k in want:
            assert torch.equal(ranks[0][k], ranks[1][k]), k
            torch.testing.assert_close(ranks[0][k], want[k], rtol=RTOL, atol=ATOL, msg=k)
        assert any(not torch.equal(want[k], initial[k]) for k in want)

    def resumes_with_one_process():
        """(d) the sharded run's checkpoint resumes in 1 unsharded process (another world size): the adapter
        checkpoint holds no FLUX weights (FLUX is frozen and loaded from its file), so it just continues."""
        cfg = tiny_config(*SHARD_STEPS, "optim.accumulation=2", f"run.output={run}")
        resumed = Trainer(cfg, models=frozen_models)
        assert resumed.resume() and resumed.step == 3
        for k, v in resumed.adapter.adapter_state_dict().items():
            assert torch.equal(v, ranks[0][k]), k
        assert len(resumed.fit(4)) == 1

    def preview_written():
        """(e) the preview grid of step 2 was generated (by both ranks: a rank-0-only FLUX call would hang)."""
        assert (run / "samples" / "step-00000002.png").is_file()

    checks = [sharded, same_losses, same_adapter, resumes_with_one_process, preview_written]
    for name, check in zip("abcde", checks, strict=True):
        try:
            check()
        except AssertionError as exc:
            failures[name] = str(exc)[:600]
    assert not failures, f"checks {sorted(failures)} failed:\n" + "\n".join(f"({k}) {v}" for k, v in failures.items())


def test_shard_flux_needs_gradient_checkpointing(tiny_config):
    with pytest.raises(ConfigError, match="model.shard_flux=true needs model.gradient_checkpointing=true"):
        tiny_config("model.shard_flux=true")
    assert load_config(None, ["model.shard_flux=true"]).model.shard_flux  # flux_dev default: checkpointing on


def test_shard_flux_with_one_process_is_an_error(tiny_config, frozen_models):
    with pytest.raises(ConfigError, match="at least 2 processes"):
        Trainer(tiny_config("model.shard_flux=true", "model.gradient_checkpointing=true"), models=frozen_models)
