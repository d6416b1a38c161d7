"""The identity embeddings an adapter expects, chosen by the adapter's recipe.

An adapter's projector was trained on one *embedding kind* made by one *recognizer*
(``AdapterConfig.embedding_kind`` / ``.recognizer``, see :mod:`anyphoto_core.adapter`). Hosts keep
both kinds per person in an :class:`IdentityEmbeddings` and let :meth:`IdentityEmbeddings.for_adapter`
pick the adapter's kind; it returns a :class:`~anyphoto_core.notices.Notice` the host shows (ComfyUI
UI, CLI stderr) when the embeddings come from a different recognizer than the adapter's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .adapter import AdapterConfig
from .faces.references import Identity
from .notices import RECOGNIZER_MISMATCH, Notice


@dataclass(frozen=True)
class IdentityEmbeddings:
    """Per person, both embedding kinds (each row L2-normalized, float32):

    ``gallery_mean``: ``(N, D)`` normalized mean over the person's photos;
    ``reference``: ``(N, D)`` the embedding of the reference face pasted on the canvas (paper eq. 15);
    ``recognizer``: name of the recognizer that made them (``""`` = unknown: no check).
    """

    gallery_mean: np.ndarray
    reference: np.ndarray
    recognizer: str = ""

    def __post_init__(self):
        if self.gallery_mean.shape != self.reference.shape:
            raise ValueError(
                f"gallery-mean embeddings {self.gallery_mean.shape} and reference embeddings "
                f"{self.reference.shape} must have the same shape (one row per person)"
            )

    @classmethod
    def from_identities(cls, identities: Sequence[Identity]) -> IdentityEmbeddings:
        """Both kinds from detected identities; the recognizer name is theirs when they all agree."""
        names = {i.recognizer for i in identities}
        return cls(
            np.stack([i.embedding for i in identities]).astype(np.float32),
            np.stack([i.primary.embedding for i in identities]).astype(np.float32),
            names.pop() if len(names) == 1 else "",
        )

    @property
    def count(self) -> int:
        return int(self.gallery_mean.shape[0])

    def for_adapter(self, config: AdapterConfig) -> tuple[np.ndarray, list[Notice]]:
        """``(N, D)`` embeddings of the adapter's ``embedding_kind`` and the notices for the user."""
        chosen = self.reference if config.embedding_kind == "reference" else self.gallery_mean
        notices = []
        if self.recognizer and config.recognizer and self.recognizer != config.recognizer:
            notices.append(
                Notice(
                    RECOGNIZER_MISMATCH,
                    f"the identity embeddings come from the recognizer {self.recognizer!r}, but this adapter "
                    f"was trained on {config.recognizer!r} embeddings, so the people will not look like "
                    f"themselves; load the {config.recognizer!r} face models for the face references",
                )
            )
        return chosen, notices
