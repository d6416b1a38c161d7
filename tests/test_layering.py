"""The method never imports the applications, and the node pack imports none of them at import time."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHOD_MODULES = [
    "adapter",
    "attention",
    "blocks",
    "canvas",
    "conditioning",
    "embeddings",
    "faces",
    "flux",
    "geometry",
    "identity",
    "notices",
    "placements",
    "sampling",
    "state_dicts",
    "tokens",
    "validation",
]
APPS = ("anyphoto_core.app", "anyphoto_core.evaluation", "anyphoto_core.headless")


def _imported_apps(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(sorted(m for m in sys.modules if m.startswith({APPS!r})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 (our own printed list)


def test_method_modules_import_no_application():
    code = "\n".join(f"import anyphoto_core.{name}" for name in METHOD_MODULES)
    assert _imported_apps(code) == []


def test_node_pack_imports_no_application():
    code = "import sys\nsys.path.insert(0, 'tests')\nfrom integration.anyphoto_pack import load_pack\nload_pack()"
    assert _imported_apps(code) == []
