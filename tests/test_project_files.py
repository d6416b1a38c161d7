"""Project files a newcomer reads first: the licence matches pyproject, and the README invents no URL and says
where the weights come from."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_license_file_matches_pyproject():
    declared = re.search(r'^license\s*=\s*\{\s*text\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared and declared.group(1) == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text


def test_readme_and_pyproject_name_no_invented_urls():
    """Only the local server address may appear; model sources are named in words."""
    for name in ("README.md", "pyproject.toml"):
        urls = re.findall(r"https?://[^\s)\"'>]+", (ROOT / name).read_text())
        assert all(u.startswith("http://127.0.0.1") for u in urls), f"{name}: {urls}"


def test_readme_says_where_every_model_file_comes_from():
    readme = (ROOT / "README.md").read_text()
    assert "no public AnyPhoto weights" in readme
    for needed in (
        "docs/training.md",
        "docs/miniworld.md",
        "black-forest-labs/FLUX.1-dev",
        "ae.safetensors",
        "clip_l.safetensors",
        "t5xxl_fp16.safetensors",
        "antelopev2",
        "VRAM",
        "Restart",
    ):
        assert needed in readme, needed
