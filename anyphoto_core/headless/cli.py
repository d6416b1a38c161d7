"""Command line: ``python -m anyphoto_core.headless WORKFLOW.json [job options | --jobs JOBS.jsonl]``.

Exit codes: 0 all jobs succeeded; 1 a job failed on the server (rejected workflow, node error, interrupted,
timeout); 2 bad input (arguments, workflow file, job fields, a workflow lacking a node to fill);
3 the server(s) could not be reached. A batch (``--jobs``, or several ``--server``) runs through
:class:`~.farm.BatchRunner`: spread over the servers, a job lost with a dying server retried on another, a
failed job not stopping the others, finished jobs recorded in the output folder and skipped by a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from .client import DEFAULT_SERVER, ComfyClient, run_workflow
from .errors import HeadlessError, JobError
from .farm import BatchRunner, batch_items
from .fill import validate_api_workflow
from .jobs import Job, read_jobs_jsonl
from .ledger import LEDGER_NAME

SINGLE_JOB_OPTIONS = ("prompt", "person", "units", "seed", "steps", "width", "height", "name")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m anyphoto_core.headless",
        description="Queue an API-format ComfyUI workflow with AnyPhoto inputs filled in; save the images.",
        epilog="Exit codes: 0 ok, 1 job failed on the server, 2 bad input, 3 server unreachable. See docs/headless.md.",
    )
    p.add_argument("workflow", type=Path, help="API-format workflow JSON (ComfyUI: Workflow > Export (API))")
    p.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help=f"ComfyUI URL; repeat to spread the jobs over several servers (default: $COMFYUI_URL or {DEFAULT_SERVER})",
    )
    p.add_argument(
        "--out", type=Path, default=Path("anyphoto_out"), help="folder for the images (default: %(default)s)"
    )
    p.add_argument("--jobs", type=Path, help="batch: JSONL file, one job object per line (see docs/headless.md)")
    job = p.add_argument_group("single job (options left out keep the workflow's values)")
    job.add_argument("--prompt", help="positive prompt text")
    job.add_argument(
        "--person",
        action="append",
        metavar="PHOTO[,PHOTO...]@X1,Y1,X2,Y2",
        help="one person: reference photo(s) and face box; repeat per person, in identity order",
    )
    job.add_argument("--units", choices=("fraction", "px"), help="units of the boxes (default: inferred)")
    job.add_argument("--seed", type=int)
    job.add_argument("--steps", type=int)
    job.add_argument("--width", type=int)
    job.add_argument("--height", type=int)
    job.add_argument("--name", help="prefix of the saved file names")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait per job (default: %(default)s)")
    p.add_argument("--include-temp", action="store_true", help="also save preview (temp) images")
    batch = p.add_argument_group("batch (--jobs or several --server)")
    batch.add_argument(
        "--per-server", type=int, default=1, metavar="N", help="jobs in flight per server (default: %(default)s)"
    )
    batch.add_argument(
        "--redo", action="store_true", help=f"run every job again, ignoring OUT/{LEDGER_NAME} of earlier runs"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_person(text: str) -> dict:
    """``"a.jpg,b.jpg@0.1,0.2,0.4,0.6"`` → ``{"photos": ["a.jpg", "b.jpg"], "box": [0.1, 0.2, 0.4, 0.6]}``."""
    photos, sep, box = text.rpartition("@")
    try:
        values = [float(v) for v in box.split(",")]
    except ValueError:
        values = []
    if not sep or not photos or len(values) != 4:
        raise JobError(f"--person {text!r}: expected PHOTO[,PHOTO...]@X1,Y1,X2,Y2")
    return {"photos": photos.split(","), "box": values}


def load_workflow(path: Path) -> dict:
    try:
        return validate_api_workflow(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise JobError(f"cannot read workflow {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise JobError(f"workflow {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def jobs_from_args(args) -> list[tuple[Job, str]]:
    """(job, file-name prefix) pairs from ``--jobs`` or the single-job options."""
    given = [name for name in SINGLE_JOB_OPTIONS if getattr(args, name) is not None]
    if args.jobs is not None:
        if given:
            raise JobError(f"--jobs cannot be combined with single-job options ({', '.join('--' + g for g in given)})")
        jobs = read_jobs_jsonl(args.jobs)
        names = [job.name for job in jobs if job.name]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise JobError(f"{args.jobs}: job names must be unique in a batch (they prefix the files): {repeated}")
        return [(job, f"{job.name}_" if job.name else f"job{i:04d}_") for i, job in enumerate(jobs, 1)]
    obj = {name: getattr(args, name) for name in given if name != "person"}
    if args.person:
        obj["people"] = [parse_person(p) for p in args.person]
    job = Job.from_dict(obj, Path.cwd())
    return [(job, f"{job.name}_" if job.name else "")]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; --out names the folder the images go to", file=sys.stderr)
        return 2
    servers = args.server or [os.environ.get("COMFYUI_URL", DEFAULT_SERVER)]
    try:
        if args.per_server < 1:
            raise JobError(f"--per-server must be at least 1, got {args.per_server}")
        workflow = load_workflow(args.workflow)
        jobs = jobs_from_args(args)
        clients = [ComfyClient(url) for url in servers]
    except HeadlessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.jobs is None and len(clients) == 1:
        return run_single(workflow, jobs[0], clients[0], args)
    return run_batch(workflow, jobs, servers, args)


def run_single(workflow: dict, job_and_prefix: tuple[Job, str], client: ComfyClient, args) -> int:
    """One job on one server, with the sampler's step bar."""
    job, prefix = job_and_prefix
    try:
        saved = run_workflow(
            workflow,
            job,
            args.out,
            client=client,
            prefix=prefix,
            progress=not args.no_progress,
            timeout=args.timeout,
            include_temp=args.include_temp,
        )
    except HeadlessError as exc:
        print(f"error: job failed: {exc}", file=sys.stderr)
        return exc.exit_code
    if not saved:
        print("warning: the job finished but its workflow saved no images (add a SaveImage node)", file=sys.stderr)
    for path in saved:
        print(path)
    return 0


def run_batch(workflow: dict, jobs: list[tuple[Job, str]], servers: list[str], args) -> int:
    """Jobs spread over ``servers``; saved paths printed as jobs finish; a summary on stderr."""

    def report(item, saved, server):
        if not saved:
            tqdm.write(f"warning: job {item.index} saved no images (add a SaveImage node)", file=sys.stderr)
        for path in saved:
            tqdm.write(str(path), file=sys.stdout)

    runner = BatchRunner(
        workflow,
        servers,
        args.out,
        per_server=args.per_server,
        timeout=args.timeout,
        include_temp=args.include_temp,
        progress=not args.no_progress,
        on_finished=report,
    )
    result = runner.run(batch_items(workflow, jobs), redo=args.redo)
    if result.skipped:
        print(f"{len(result.skipped)} job(s) were done in an earlier run (see {runner.ledger.path})", file=sys.stderr)
    for index, exc in sorted(result.failed.items()):
        print(f"error: job {index}/{len(jobs)} failed: {exc}", file=sys.stderr)
    if result.not_run:
        down = "; ".join(f"{s.url}: {s.down}" for s in result.servers if s.down)
        print(
            f"error: {len(result.not_run)} job(s) not run, every server is down ({down}); "
            f"start a server and rerun the same command to finish the batch",
            file=sys.stderr,
        )
    return result.exit_code
