#!/usr/bin/env bash
# Prepare a real ComfyUI checkout for AnyPhoto's opt-in integration tests (tests/integration/).
#
# Usage:
#   scripts/setup_comfyui.sh SOURCE [TARGET]
#
#   SOURCE  either a bare git directory of the ComfyUI repository (e.g. a mirror such as
#           /work/.mirror/Comfy-Org+ComfyUI/repo) or an existing ComfyUI checkout (a folder with main.py).
#   TARGET  where the checkout goes (default: /work/comfyui). Must be outside this repository:
#           ComfyUI source code is never copied into AnyPhoto.
#
# From a bare git dir the files of HEAD are extracted one by one (`git show HEAD:path`), so a mirror that
# lacks a blob still gives a usable tree; missing files are listed at the end. From a checkout the tree is
# copied (or used in place when SOURCE == TARGET).
#
# Then ComfyUI's requirements.txt is installed into the active Python environment (use the project venv:
# `. .venv/bin/activate` first, or set PYTHON=/path/to/python) WITHOUT touching torch:
#   * the torch / torchvision / torchaudio lines are dropped;
#   * the installed torch (and torchvision, if present) are pinned through a pip constraints file, so no
#     dependency (kornia, spandrel, torchsde, ...) can pull a different torch wheel;
#   * `pip install --dry-run` runs first and the script stops if the plan would still install torch;
#   * `requests` is added (ComfyUI imports it in app/frontend_management.py but does not list it).
# torchaudio is optional: only ComfyUI's audio nodes need it.
#
# With GGUF_SOURCE set (a bare git dir or a checkout of github.com/city96/ComfyUI-GGUF), ComfyUI-GGUF is put in
# TARGET/custom_nodes/ComfyUI-GGUF the same way and its `gguf` requirement installed; tests/integration/test_gguf.py
# finds it there (or at $COMFYUI_GGUF_PATH). Servers started by the tests use their own custom_nodes folder.
#
# Finally `python main.py --cpu --quick-test-for-ci` is run in TARGET as an import check.
#
# Afterwards run the integration tests with:
#   COMFYUI_PATH=TARGET python -m pytest tests/integration -q
# COMFYUI_PATH is the folder that holds ComfyUI's main.py; without it the integration tests are skipped.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

SOURCE=$(realpath "$1")
TARGET=$(realpath -m "${2:-/work/comfyui}")
PYTHON=${PYTHON:-python}
REPO_ROOT=$(realpath "$(dirname "$0")/..")

case "$TARGET/" in
    "$REPO_ROOT"/*) echo "error: TARGET $TARGET is inside the AnyPhoto repository; choose a folder outside it" >&2; exit 2 ;;
esac

missing=()
# extract_tree BARE_GIT_DIR DEST: the files of HEAD, one by one (`git show HEAD:path`); unreadable blobs are
# appended to $missing.
extract_tree() {
    local src=$1 dest_root=$2 entry meta path mode type dest link
    echo "Extracting $(git --git-dir="$src" log -1 --format='%h %cs %s' HEAD) from $src to $dest_root"
    mkdir -p "$dest_root"
    # ls-tree -z: mode type object<TAB>path, NUL-terminated (paths with spaces are safe).
    while IFS= read -r -d '' entry; do
        meta=${entry%%$'\t'*}
        path=${entry#*$'\t'}
        read -r mode type _ <<<"$meta"
        [[ "$type" == "blob" ]] || continue   # submodules (commit entries) are skipped
        dest="$dest_root/$path"
        mkdir -p "$(dirname "$dest")"
        if [[ "$mode" == "120000" ]]; then
            if link=$(git --git-dir="$src" show "HEAD:$path" 2>/dev/null); then
                ln -sfn "$link" "$dest"
            else
                missing+=("$path")
            fi
        elif git --git-dir="$src" show "HEAD:$path" >"$dest.part" 2>/dev/null; then
            mv "$dest.part" "$dest"
            if [[ "$mode" == "100755" ]]; then chmod +x "$dest"; fi
        else
            rm -f "$dest.part"
            missing+=("$path")
        fi
    done < <(git --git-dir="$src" ls-tree -r -z HEAD)
}

# copy_or_extract SOURCE DEST MARKER: SOURCE is a bare git dir (extracted) or a checkout holding MARKER (copied).
copy_or_extract() {
    local src=$1 dest=$2 marker=$3
    if [[ -f "$src/HEAD" && -d "$src/objects" ]]; then
        extract_tree "$src" "$dest"
    elif [[ -f "$src/$marker" ]]; then
        if [[ "$src" != "$dest" ]]; then
            echo "Copying checkout $src to $dest"
            mkdir -p "$dest"
            cp -a "$src/." "$dest/"
        fi
    else
        echo "error: $src is neither a bare git directory (HEAD + objects/) nor a checkout ($marker)" >&2
        exit 2
    fi
}

copy_or_extract "$SOURCE" "$TARGET" main.py
if [[ -n "${GGUF_SOURCE:-}" ]]; then
    copy_or_extract "$(realpath "$GGUF_SOURCE")" "$TARGET/custom_nodes/ComfyUI-GGUF" nodes.py
fi

if [[ ${#missing[@]} -gt 0 ]]; then
    echo "warning: ${#missing[@]} file(s) missing from the mirror and not extracted:" >&2
    printf '  %s\n' "${missing[@]}" >&2
fi

[[ -f "$TARGET/main.py" && -f "$TARGET/requirements.txt" ]] || {
    echo "error: $TARGET has no main.py/requirements.txt after extraction" >&2; exit 1; }

# --- requirements, with the installed torch protected ------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -v -i -E '^[[:space:]]*(torch|torchvision|torchaudio)[[:space:]]*([<>=!~;#].*)?$' "$TARGET/requirements.txt" \
    >"$work/requirements.txt"
echo "requests" >>"$work/requirements.txt"
if [[ -n "${GGUF_SOURCE:-}" ]]; then
    grep -i -E '^[[:space:]]*gguf' "$TARGET/custom_nodes/ComfyUI-GGUF/requirements.txt" >>"$work/requirements.txt" || true
fi

"$PYTHON" - "$work/constraints.txt" <<'EOF'
import importlib.metadata as md
import sys

lines = []
for name in ("torch", "torchvision", "torchaudio"):
    try:
        lines.append(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        if name == "torch":
            sys.exit("error: torch is not installed in this Python; install the torch build you want first")
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
echo "Protecting: $(tr '\n' ' ' <"$work/constraints.txt")"

"$PYTHON" -m pip install --dry-run --quiet --report "$work/plan.json" \
    -r "$work/requirements.txt" -c "$work/constraints.txt"
"$PYTHON" - "$work/plan.json" <<'EOF'
import json
import sys

plan = json.load(open(sys.argv[1]))
names = [item["metadata"]["name"].lower() for item in plan.get("install", [])]
bad = [n for n in names if n in ("torch", "torchvision", "torchaudio")]
if bad:
    sys.exit(f"error: the install plan would replace {bad}; refusing (see pip --dry-run)")
print("install plan:", ", ".join(sorted(names)) or "nothing new")
EOF
"$PYTHON" -m pip install --quiet -r "$work/requirements.txt" -c "$work/constraints.txt"

# --- import check ----------------------------------------------------------------------------------
echo "Running main.py --cpu --quick-test-for-ci in $TARGET"
scratch=$(mktemp -d)
mkdir -p "$scratch/custom_nodes"
(cd "$TARGET" && "$PYTHON" main.py --cpu --quick-test-for-ci --base-directory "$scratch" >"$work/quick.log" 2>&1) || {
    tail -40 "$work/quick.log" >&2; rm -rf "$scratch"; echo "error: ComfyUI quick test failed" >&2; exit 1; }
rm -rf "$scratch"
grep -E "IMPORT FAILED|Cannot import" "$work/quick.log" || true

echo
echo "ComfyUI ready. Run the integration tests with:"
echo "  COMFYUI_PATH=$TARGET python -m pytest tests/integration -q"
