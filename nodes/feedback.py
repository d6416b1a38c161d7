"""Warnings the user must see in ComfyUI, not only in the server console.

A node returns ``{"ui": {UI_KEY: [message, ...]}, "result": ...}``: ComfyUI sends the ``ui`` part to the
browser with the node's ``executed`` event (also when the node's output came from the cache) and keeps it
in the prompt history; ``web/anyphoto_warnings.js`` shows the messages on the node and as a toast. An
empty list clears the node's previous warnings. Every message is also logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

UI_KEY = "anyphoto_warnings"
LOG = logging.getLogger("anyphoto")


def with_warnings(result: tuple, messages: Iterable, ui: dict | None = None) -> dict:
    """The V1 node return value carrying ``result`` and ``messages`` (anything with a readable ``str``)
    in ``ui[UI_KEY]``, next to the node's other ``ui`` entries; each message is logged as a warning."""
    texts = [str(m) for m in messages]
    for text in texts:
        LOG.warning("AnyPhoto: %s", text)
    return {"ui": {**(ui or {}), UI_KEY: texts}, "result": result}
