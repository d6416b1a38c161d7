"""Errors of model discovery and loading."""

from __future__ import annotations


class ModelFileError(ValueError):
    """A model file is missing, misplaced or of the wrong kind; the message says what to put where."""
