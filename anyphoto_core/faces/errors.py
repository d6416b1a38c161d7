"""Errors of the face pipeline. All are ``ValueError`` subclasses with an actionable message."""

from __future__ import annotations


class FaceError(ValueError):
    """Base class: something about the user's photos or face models is wrong."""


class UnreadableImageError(FaceError):
    """A photo could not be read or has an unsupported layout."""


class NoFaceError(FaceError):
    """The detector found no face in a photo."""


class MultipleFacesError(FaceError):
    """Several faces were found where exactly one was expected."""


class FaceTooSmallError(FaceError):
    """The chosen face is too small to give a usable identity embedding."""


class FaceModelError(FaceError):
    """The face-analysis models are missing, misplaced or broken; the message says how to fix it."""
