"""The record of a batch's finished jobs, so that a rerun resumes instead of redoing them.

One JSON object per line in ``OUT/anyphoto_batch_done.jsonl``, appended (and flushed to disk) after a job's
images are saved: ``{"key", "index", "name", "files": [names in OUT], "by"}`` (``by``: the server URL or the
process that ran it). A job counts as done on a rerun when a line has its key and all its files still exist.
The key is a hash of the run's settings (the workflow, or the standalone models and guidance), the job's
fields and its position in the batch, so changing any of them runs the job again. A torn last line (the
client was killed while writing it) is ignored. Several processes may append to one file: each line is one
``write`` in append mode.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path

from .jobs import Job

LEDGER_NAME = "anyphoto_batch_done.jsonl"


def job_key(run_settings: dict, job: Job, index: int) -> str:
    """A stable hash (hex, 16 chars) of ``run_settings`` (JSON-able), ``job``'s fields and its 1-based ``index``."""
    fields = dataclasses.asdict(job)
    payload = json.dumps({"workflow": run_settings, "job": fields, "index": index}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class BatchLedger:
    """Appends finished jobs to ``out_dir / LEDGER_NAME`` and answers which keys are already done.

    Thread-safe: the workers of several servers record through one instance.
    """

    def __init__(self, out_dir: Path | str):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LEDGER_NAME
        self._lock = threading.Lock()

    def finished(self) -> dict[str, dict]:
        """``{key: record}`` of the jobs done in earlier runs whose files are all still in ``out_dir``."""
        done = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return done
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            if isinstance(record, dict) and all((self.out_dir / f).is_file() for f in record.get("files", [])):
                done[record["key"]] = record
        return done

    def record(self, key: str, index: int, name: str | None, files: list[Path], by: str) -> None:
        """Append one finished job; on disk (fsync) before returning."""
        line = json.dumps({"key": key, "index": index, "name": name, "files": [Path(f).name for f in files], "by": by})
        with self._lock:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
