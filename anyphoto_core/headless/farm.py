"""Spread a batch of jobs over several ComfyUI servers; survive a server dying; resume a half-done batch.

Each server keeps its own queue: :class:`BatchRunner` runs ``per_server`` worker threads per server, each with
its own :class:`~.client.ComfyClient` (own ``client_id`` and websocket), taking the next job from one shared
list when its previous job is done, so a fast server takes more jobs. When a server cannot be reached or drops
the connection (:class:`~.errors.ServerUnavailable`), it is marked down for the rest of the run and its job goes
back to the front of the list for another server. A job the server itself fails (rejected workflow, node error)
is reported and not retried. Images are downloaded into a staging folder and moved into the output folder only
when the whole job succeeded, then the job is recorded in the :class:`~.ledger.BatchLedger`; a rerun skips
recorded jobs. One tqdm bar counts jobs, with each server's count and rate.
"""

from __future__ import annotations

import collections
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from .client import ComfyClient, run_workflow
from .errors import ExecutionFailed, HeadlessError, ServerUnavailable
from .jobs import Job
from .ledger import BatchLedger, job_key

STAGING_DIR = ".anyphoto_partial"


@dataclass
class BatchItem:
    """One job of a batch: 1-based ``index``, file-name ``prefix``, resume ``key``, servers it was lost on."""

    index: int
    job: Job
    prefix: str
    key: str
    lost_on: list[str] = field(default_factory=list)


@dataclass
class ServerState:
    """What the run knows about one server: jobs finished there, and why it is down (``None``: up)."""

    url: str
    done: int = 0
    down: str | None = None

    @property
    def label(self) -> str:
        return urlsplit(self.url).netloc or self.url


@dataclass
class BatchResult:
    """Outcome of :meth:`BatchRunner.run`. Keys are job indices (1-based)."""

    saved: dict[int, list[Path]] = field(default_factory=dict)
    failed: dict[int, HeadlessError] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    not_run: list[int] = field(default_factory=list)
    lost_on: dict[int, list[str]] = field(default_factory=dict)
    servers: list[ServerState] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all done; 3 jobs left because every server is down; else the worst failed job's code."""
        if self.not_run:
            return ServerUnavailable.exit_code
        return max((exc.exit_code for exc in self.failed.values()), default=0)


def batch_items(workflow: dict, jobs: list[tuple[Job, str]]) -> list[BatchItem]:
    """:class:`BatchItem` for ``(job, prefix)`` pairs in batch order."""
    return [BatchItem(i, job, prefix, job_key(workflow, job, i)) for i, (job, prefix) in enumerate(jobs, 1)]


class BatchRunner:
    """Run :class:`BatchItem` s of one API ``workflow`` on the ComfyUI ``servers`` (URLs), saving into ``out_dir``.

    ``per_server``: jobs in flight per server. ``on_finished(item, saved_paths, server_url)`` is called from a
    worker thread after each job is recorded (the CLI prints the paths; tests use it to kill a server).
    ``timeout``, ``include_temp``: as :func:`~.client.run_workflow`.
    """

    def __init__(
        self,
        workflow: dict,
        servers: list[str],
        out_dir: Path | str,
        *,
        per_server: int = 1,
        timeout: float = 3600.0,
        include_temp: bool = False,
        progress: bool = True,
        on_finished: Callable[[BatchItem, list[Path], str], None] | None = None,
    ):
        if per_server < 1:
            raise ValueError(f"per_server must be at least 1, got {per_server}")
        self.workflow = workflow
        self.servers = [ComfyClient(url).server for url in servers]  # validates the URLs before anything runs
        self.out_dir = Path(out_dir)
        self.ledger = BatchLedger(self.out_dir)
        self.per_server = per_server
        self.timeout = timeout
        self.include_temp = include_temp
        self.progress = progress
        self.on_finished = on_finished
        self._cond = threading.Condition()

    def run(self, items: list[BatchItem], redo: bool = False) -> BatchResult:
        """Run every item not already recorded as done (all of them with ``redo``); block until settled."""
        done_before = {} if redo else self.ledger.finished()
        result = BatchResult(servers=[ServerState(url) for url in self.servers])
        result.skipped = [item.index for item in items if item.key in done_before]
        self._pending = collections.deque(item for item in items if item.key not in done_before)
        self._in_flight = 0
        self._result = result
        self._started = time.monotonic()
        self._bar = tqdm(
            total=len(items), initial=len(result.skipped), unit="job", disable=not self.progress, dynamic_ncols=True
        )
        workers = [
            threading.Thread(target=self._work, args=(state,), daemon=True, name=f"anyphoto-{state.label}-{slot}")
            for state in result.servers
            for slot in range(self.per_server)
        ]
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        finally:
            self._bar.close()
        result.not_run = sorted(item.index for item in self._pending)
        result.lost_on = {item.index: item.lost_on for item in items if item.lost_on}
        return result

    # -- worker side ---------------------------------------------------------------------------------------
    def _work(self, state: ServerState) -> None:
        client = ComfyClient(state.url)
        while (item := self._take(state)) is not None:
            stage = self.out_dir / STAGING_DIR / item.key
            try:
                staged = run_workflow(
                    self.workflow,
                    item.job,
                    stage,
                    client=client,
                    prefix=item.prefix,
                    progress=False,
                    timeout=self.timeout,
                    include_temp=self.include_temp,
                )
                saved = self._publish(item, staged, state)
            except ServerUnavailable as exc:
                self._lost(item, state, exc)
                return
            except HeadlessError as exc:
                self._settle(item, state, failure=exc)
            except Exception as exc:  # a worker thread must settle its job whatever happens
                self._settle(item, state, failure=ExecutionFailed(f"{type(exc).__name__}: {exc}"))
            else:
                self._settle(item, state, saved=saved)
                if self.on_finished is not None:
                    self.on_finished(item, saved, state.url)
            finally:
                shutil.rmtree(stage, ignore_errors=True)

    def _take(self, state: ServerState) -> BatchItem | None:
        """The next job for ``state``'s server; ``None`` when it is down or nothing is left to run anywhere."""
        with self._cond:
            while True:
                if state.down is not None:
                    return None
                if self._pending:
                    self._in_flight += 1
                    return self._pending.popleft()
                if self._in_flight == 0:
                    return None
                self._cond.wait()  # a job in flight elsewhere may come back if its server dies

    def _publish(self, item: BatchItem, staged: list[Path], state: ServerState) -> list[Path]:
        """Move a finished job's images from staging into the output folder and record the job."""
        saved = []
        for path in staged:
            target = self.out_dir / path.name
            os.replace(path, target)
            saved.append(target)
        self.ledger.record(item.key, item.index, item.job.name, saved, state.url)
        return saved

    def _lost(self, item: BatchItem, state: ServerState, exc: ServerUnavailable) -> None:
        with self._cond:
            if state.down is None:
                state.down = str(exc)
                self._bar.write(
                    f"warning: server {state.url} is down ({exc}); its jobs go to the other servers", file=sys.stderr
                )
            item.lost_on.append(state.url)
            self._pending.appendleft(item)
            self._in_flight -= 1
            self._show_rates()
            self._cond.notify_all()

    def _settle(self, item: BatchItem, state: ServerState, saved=None, failure: HeadlessError | None = None) -> None:
        with self._cond:
            if failure is None:
                self._result.saved[item.index] = saved
                state.done += 1
            else:
                self._result.failed[item.index] = failure
                self._bar.write(f"error: job {item.index} failed on {state.url}: {failure}", file=sys.stderr)
            self._in_flight -= 1
            self._bar.update(1)
            self._show_rates()
            self._cond.notify_all()

    def _show_rates(self) -> None:
        """Per-server postfix: ``host:port N @ R/min`` or ``host:port down``."""
        minutes = max(time.monotonic() - self._started, 1e-6) / 60
        parts = [
            f"{s.label} down" if s.down is not None else f"{s.label} {s.done} @ {s.done / minutes:.1f}/min"
            for s in self._result.servers
        ]
        self._bar.set_postfix_str(", ".join(parts), refresh=True)
