"""Import the pack's ``nodes/`` package as ``anyphoto_nodes``: ComfyUI has its own top-level ``nodes``
module, so with a ComfyUI checkout on ``sys.path`` ``import nodes`` would be ComfyUI's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
NAME = "anyphoto_nodes"


def load_pack():
    """The pack's node package (imported once per process)."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    folder = PACK_ROOT / "nodes"
    spec = importlib.util.spec_from_file_location(
        NAME, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
    return module
