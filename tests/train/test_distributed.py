"""Two CPU processes through ``accelerate launch`` (DDP, gloo) train a few steps and agree on parameters."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]


def test_two_cpu_processes_agree(tiny_cli_args, tmp_path):
    config, overrides = tiny_cli_args
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
        str(Path(__file__).with_name("ddp_worker.py")),
        str(tmp_path),
        config,
        *overrides,
        "run.steps=3",
        "optim.lr=1e-2",
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{i}.safetensors") for i in range(2)]
    initial = load_file(tmp_path / "initial.safetensors")
    with safe_open(str(tmp_path / "rank1.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta == {"world": "2", "global_batch": "2"}
    assert ranks[0].keys() == ranks[1].keys() == initial.keys()
    for k in initial:
        assert torch.equal(ranks[0][k], ranks[1][k]), k
    assert any(not torch.equal(ranks[0][k], initial[k]) for k in initial)
    assert "global batch = 1 per GPU x 2 GPUs x 1 accumulation = 2" in proc.stdout
