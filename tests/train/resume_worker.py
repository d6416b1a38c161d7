"""Worker for ``test_resume_on_two_processes_reshards``: ``accelerate launch --num_processes 2 resume_worker.py OUT
CONFIG OVERRIDES...`` resumes the latest checkpoint of ``run.output``, trains to ``run.steps`` and writes the
stream positions this rank trained on to ``OUT/positions<rank>.json``."""

import json
import sys
from pathlib import Path

import torch

from train.config import load_config
from train.trainer import Trainer


def main(out: str, config: str, *overrides: str) -> None:
    torch.set_num_threads(1)
    trainer = Trainer(load_config(config, list(overrides)))
    assert trainer.resume(), "no checkpoint to resume"
    used = []
    position = trainer.position

    def recording(step, micro):
        used.append(position(step, micro))
        return used[-1]

    trainer.position = recording
    trainer.fit()
    rank = trainer.accelerator.process_index
    (Path(out) / f"positions{rank}.json").write_text(json.dumps(used))
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(*sys.argv[1:])
