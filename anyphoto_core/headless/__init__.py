"""Headless AnyPhoto: queue API-format workflows on a ComfyUI server from Python or the command line.

``python -m anyphoto_core.headless --help`` for the CLI; :func:`run_workflow` / :class:`ComfyClient` from
Python. See docs/headless.md. Host-independent: talks HTTP/websocket, never imports ComfyUI.
"""

from .client import DEFAULT_SERVER, ComfyClient, run_workflow
from .errors import ExecutionFailed, HeadlessError, JobError, PromptRejected, ServerUnavailable
from .fill import FILL_RULES, fill_workflow
from .jobs import Job, Person, read_jobs_jsonl

__all__ = [
    "DEFAULT_SERVER",
    "ComfyClient",
    "run_workflow",
    "ExecutionFailed",
    "HeadlessError",
    "JobError",
    "PromptRejected",
    "ServerUnavailable",
    "FILL_RULES",
    "fill_workflow",
    "Job",
    "Person",
    "read_jobs_jsonl",
]
