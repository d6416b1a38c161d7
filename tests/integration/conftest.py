"""Opt-in tests against a real ComfyUI checkout. Skipped unless ``COMFYUI_PATH`` is set.

Run: ``COMFYUI_PATH=/work/comfyui python -m pytest tests/integration -q`` (prepare the checkout with
scripts/setup_comfyui.sh). Fixtures: ``comfy`` (library mode, returns comfy.model_management) and
``comfy_server`` (one server per session with the tiny FLUX test pack loaded) and ``anyphoto_server`` (the
same plus the AnyPhoto pack, face models and a tiny adapter).
"""

import os
from pathlib import Path

import pytest

from integration import comfy_harness, pack_server

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if os.environ.get("COMFYUI_PATH"):
        return
    skip = pytest.mark.skip(reason=comfy_harness.SETUP_HINT)
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def comfy():
    return comfy_harness.import_comfy()


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    with comfy_harness.start_server(tmp_path_factory.mktemp("comfy_base"), [comfy_harness.TINY_FLUX_PACK]) as server:
        yield server


@pytest.fixture(scope="session")
def anyphoto_server(tmp_path_factory):
    """One server per session with the AnyPhoto pack, face models and a tiny adapter (pack_server.py)."""
    with pack_server.start_anyphoto_server(tmp_path_factory.mktemp("anyphoto_base")) as server:
        yield server
