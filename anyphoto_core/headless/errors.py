"""Errors of the headless client. Each carries the process exit code the CLI uses for it."""

from __future__ import annotations


class HeadlessError(Exception):
    """Base class. ``exit_code`` 1: the server could not produce the result."""

    exit_code = 1


class JobError(HeadlessError, ValueError):
    """Bad input on our side (workflow file, job fields, photos, a workflow missing a node to fill). Exit 2."""

    exit_code = 2


class ServerUnavailable(HeadlessError):
    """The ComfyUI server could not be reached or dropped the connection. Exit 3."""

    exit_code = 3


class PromptRejected(HeadlessError):
    """``POST /prompt`` refused the workflow (HTTP 400), or accepted it with ``node_errors``. Exit 1."""


class ExecutionFailed(HeadlessError):
    """The prompt ran and failed: ``execution_error``, ``execution_interrupted``, or an error status. Exit 1."""


def format_node_errors(node_errors: dict) -> str:
    """One line per error of ComfyUI's ``node_errors`` ``{node_id: {"class_type", "errors": [...]}}``."""
    lines = []
    for node_id, info in node_errors.items():
        class_type = info.get("class_type", "?")
        for err in info.get("errors", []) or [{"message": str(info)}]:
            details = f": {err['details']}" if err.get("details") else ""
            lines.append(f"node {node_id} ({class_type}): {err.get('message', 'error')}{details}")
    return "\n".join(lines)
