"""Worker for ``test_two_cpu_processes_agree``: ``accelerate launch --num_processes 2 --cpu ddp_worker.py OUT
OVERRIDES...`` trains the tiny config and writes this rank's adapter tensors to ``OUT/rank<i>.safetensors``
and the initial ones to ``OUT/initial.safetensors`` (rank 0), and its logged terms per step to
``OUT/history<i>.json``."""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from train.config import load_config
from train.trainer import Trainer


def _tensors(trainer) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in trainer.adapter.adapter_state_dict().items()}


def main(out: str, config: str, *overrides: str) -> None:
    torch.set_num_threads(1)
    trainer = Trainer(load_config(config, list(overrides)))
    rank, out = trainer.accelerator.process_index, Path(out)
    if rank == 0:
        save_file(_tensors(trainer), str(out / "initial.safetensors"))
    history = trainer.fit()
    (out / f"history{rank}.json").write_text(json.dumps(history))
    save_file(
        _tensors(trainer),
        str(out / f"rank{rank}.safetensors"),
        metadata={
            "world": str(trainer.accelerator.num_processes),
            "global_batch": str(trainer.global_batch),
            "wrapper": type(trainer.objective).__name__,
        },
    )
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(*sys.argv[1:])
