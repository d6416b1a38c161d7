"""``anyphoto batch JOBS.jsonl --out DIR``: many generations with one model load (see ``docs/pipeline.md``).

The jobs file is the headless client's format (:mod:`anyphoto_core.headless.jobs`: ``prompt``, ``people``
with ``photos`` and ``box``, ``units``, ``seed``, ``steps``, ``width``, ``height``, ``name``), so one file
runs on ComfyUI servers and standalone alike; fields a job leaves out take the command's options. Each
person's face is the largest face of each photo. The image of job *k* is ``DIR/<name>.png`` (``jobKKKK.png``
without a name).

- **One load.** The models and the face analyser are loaded once; the prompts of all jobs are encoded
  first, then the text encoders are freed (as ``anyphoto generate`` frees them after its one prompt).
- **Resumable.** A finished job is recorded in ``DIR/anyphoto_batch_done.jsonl``
  (:class:`~anyphoto_core.headless.ledger.BatchLedger`); a rerun skips recorded jobs whose image exists.
  Images are written to a temporary name and renamed, so a kill never leaves a half-written PNG.
- **Sharded.** Under ``accelerate launch`` (``WORLD_SIZE`` > 1) process *r* of *W* takes the jobs with
  ``(k - 1) % W == r``, on its own device (``accelerate.PartialState``), and records into the same ledger
  (one appended line per job). The split depends only on the job numbers, so processes that start at
  different times, or a rerun, never disagree on who does what.

Exit codes: 0 all done, 1 some job failed (the others still ran; rerun to retry only those), 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..headless.errors import HeadlessError
from ..headless.jobs import Job, read_jobs_jsonl
from ..headless.ledger import BatchLedger, job_key
from ..placements import parse_placements

DEFAULT_SIZE = "1024x1024"


@dataclass(frozen=True)
class Shard:
    """This process's share of the batch: ``rank`` of ``world`` processes, on ``device`` (None: default)."""

    rank: int = 0
    world: int = 1
    device: str | None = None

    @property
    def label(self) -> str:
        return f"process {self.rank}/{self.world}" + (f" ({self.device})" if self.device else "")

    def takes(self, index: int) -> bool:
        """Whether the job numbered ``index`` (1-based) is this process's."""
        return (index - 1) % self.world == self.rank

    def barrier(self) -> None:
        if self.world > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()


def current_shard() -> Shard:
    """The shard of this process: from ``accelerate.PartialState`` under a launcher, else the whole batch."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard()
    import torch
    from accelerate import PartialState

    # joins the process group (gloo on CPU-only machines); sets this process's CUDA device
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != int(os.environ["WORLD_SIZE"]):
        raise ValueError(
            f"launched as {os.environ['WORLD_SIZE']} processes but accelerate sees {state.num_processes}; "
            "every process would run every job. Check the accelerate launch options (--multi_gpu, --num_processes)"
        )
    device = str(state.device) if state.device.type != "cpu" else None
    return Shard(state.process_index, state.num_processes, device)


def add_batch_command(sub, add_model_arguments) -> None:
    """Register ``batch`` on the ``anyphoto`` subcommand parser; ``add_model_arguments(parser)`` adds the
    model-file options shared with ``generate``."""
    b = sub.add_parser(
        "batch",
        help="generate every job of a JSONL file with one model load (resumable; shards under accelerate launch)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("jobs", type=Path, help="JSONL file, one job per line (docs/headless.md format)")
    b.add_argument("--out", type=Path, required=True, help="folder for the images and the record of finished jobs")
    b.add_argument("--prompt", default=None, help="prompt of jobs that have none")
    b.add_argument("--size", default=DEFAULT_SIZE, help=f"WxH of jobs without width/height (default {DEFAULT_SIZE})")
    b.add_argument("--steps", type=int, default=28, help="steps of jobs without steps (default 28)")
    b.add_argument("--seed", type=int, default=0, help="seed of jobs without seed (default 0)")
    b.add_argument("--guidance", type=float, default=3.5)
    b.add_argument("--id-guidance", type=float, default=1.0, help="identity guidance scale (1 = off, one pass)")
    add_model_arguments(b)
    b.add_argument("--redo", action="store_true", help="run every job again, ignoring the record of finished jobs")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")


def read_batch(path: Path) -> list[tuple[int, Job, str]]:
    """``(index, job, file stem)`` for every job of ``path``; names must be unique. Raises ``ValueError``."""
    try:
        jobs = read_jobs_jsonl(path)
    except HeadlessError as exc:
        raise ValueError(str(exc)) from None
    if not jobs:
        raise ValueError(f"{path} holds no job; write one JSON object per line (see docs/headless.md)")
    stems = [job.name or f"job{i:04d}" for i, job in enumerate(jobs, 1)]
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise ValueError(f"{path}: job names must be unique in a batch (they name the images): {repeated}")
    for stem in stems:
        if Path(stem).name != stem or stem in ("", ".", ".."):
            raise ValueError(f"{path}: job name {stem!r} must be a plain file name (no folders)")
    return [(i, job, stem) for i, (job, stem) in enumerate(zip(jobs, stems, strict=True), 1)]


def job_settings(job: Job, args, prompt_default: str):
    """The :class:`~.pipeline.GenerationSettings` of ``job``, its fields over the command's defaults."""
    from .cli import parse_size
    from .pipeline import GenerationSettings

    width, height = parse_size(args.size)
    return GenerationSettings(
        job.prompt if job.prompt is not None else prompt_default,
        job.width or width,
        job.height or height,
        job.steps or args.steps,
        job.seed if job.seed is not None else args.seed,
        args.guidance,
        args.id_guidance,
    )


def job_placements(job: Job, width: int, height: int):
    """The job's boxes as :class:`~anyphoto_core.placements.Placement` s (units as the headless client)."""
    return parse_placements(job.placements_spec(), width, height) if job.people else []


def run_batch(args) -> int:
    """The ``batch`` command. Returns the exit code; raises ``ValueError`` / ``OSError`` on bad input."""
    from tqdm import tqdm

    from ..faces import build_identity
    from .cli import DEFAULT_PROMPT, load_analyzer, load_pipeline
    from .pipeline import model_summary

    batch = read_batch(args.jobs)
    prompt_default = args.prompt or DEFAULT_PROMPT
    settings = {index: job_settings(job, args, prompt_default) for index, job, _ in batch}  # checks sizes early
    shard = current_shard()
    notes: list[str] = []
    pipe = load_pipeline(args, notes)
    analyzer = load_analyzer(args.models, notes)
    if shard.rank == 0:
        for note in notes:
            print(note, file=sys.stderr)
    identity_of_run = {"models": model_summary(pipe)["files"], "guidance": args.guidance, "id": args.id_guidance}
    ledger = BatchLedger(args.out)
    done = {} if args.redo else ledger.finished()
    keys = {index: job_key(identity_of_run, job, index) for index, job, _ in batch}
    mine = [(i, job, stem) for i, job, stem in batch if shard.takes(i) and keys[i] not in done]
    skipped = sum(1 for i, _, _ in batch if shard.takes(i) and keys[i] in done)

    for prompt in dict.fromkeys(settings[i].prompt for i, _, _ in mine):
        pipe.encode_prompt(prompt, free_encoders=False)
    pipe.text_encoders.free()

    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    desc = f"batch {shard.rank}" if shard.world > 1 else "batch"
    with tqdm(
        total=len(mine) + skipped,
        initial=skipped,
        desc=desc,
        unit="image",
        position=shard.rank,
        file=sys.stderr,
        disable=args.no_progress,
    ) as bar:
        for index, job, stem in mine:
            try:
                identities = [
                    build_identity([str(p) for p in person.photos], analyzer, person=f"job {index} person {k + 1}")
                    for k, person in enumerate(job.people)
                ]
                s = settings[index]
                result = pipe.generate(s, identities, job_placements(job, s.width, s.height))
                target = args.out / f"{stem}.png"
                partial = args.out / f".{stem}.png.partial"
                result.image.save(partial, format="PNG")
                os.replace(partial, target)
                ledger.record(keys[index], index, job.name, [target], shard.label)
            except (ValueError, OSError) as exc:
                failed.append(index)
                bar.write(f"error: job {index} ({stem}) failed: {exc}", file=sys.stderr)
            bar.update(1)
    shard.barrier()
    if shard.rank == 0 and skipped and not args.no_progress:
        print(f"{skipped} job(s) of this process were done in an earlier run ({ledger.path})", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} job(s) failed: {failed}; rerun the same command to retry them", file=sys.stderr)
        return 1
    return 0
