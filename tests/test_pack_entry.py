"""The pack's ComfyUI entry point (``__init__.py``) must not shadow modules of ComfyUI or other packs."""

import json
import os
import subprocess
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]
#: Top-level names in the pack folder other than ``anyphoto_core`` (the one name the pack must provide) that
#: ComfyUI or other packs may also have: ComfyUI has ``nodes.py`` and ``tests/``.
PACK_TOP_LEVEL = sorted(
    p.stem
    for p in PACK_ROOT.iterdir()
    if (p.suffix == ".py" or p.is_dir()) and p.stem.isidentifier() and p.stem != "anyphoto_core"
)

PROBE = """
import importlib, importlib.util, json, sys
root, host = sys.argv[1], sys.argv[2]
sys.path.insert(0, host)  # like ComfyUI's own folder, first on sys.path
spec = importlib.util.spec_from_file_location("anyphoto_pack", root + "/__init__.py", submodule_search_locations=[root])
pack = importlib.util.module_from_spec(spec)
sys.modules["anyphoto_pack"] = pack
spec.loader.exec_module(pack)
names = sys.argv[3:]
print(json.dumps({
    "index": sys.path.index(root), "length": len(sys.path), "nodes": len(pack.NODE_CLASS_MAPPINGS),
    "origins": {n: importlib.import_module(n).__file__ for n in names},
}))
"""


def test_pack_folder_is_appended_and_shadows_no_host_module(tmp_path):
    """A host folder first on sys.path has a module of every top-level name of the pack; after loading the
    pack, each name still imports the host's module and the pack folder is the last sys.path entry."""
    host = tmp_path / "host"
    host.mkdir()
    for name in PACK_TOP_LEVEL:
        (host / f"{name}.py").write_text("HOST = True\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the pack folder must not be on it already
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(PACK_ROOT), str(host), *PACK_TOP_LEVEL],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["nodes"] >= 8  # the pack really loaded its nodes
    assert report["index"] == report["length"] - 1
    assert {"nodes", "tests", "train", "install"} <= set(report["origins"])
    for name, origin in report["origins"].items():
        assert Path(origin) == host / f"{name}.py", f"the pack's {name!r} shadows the host's"
