#!/usr/bin/env bash
# Tests of the ComfyUI web extension (web/): logic unit tests and a headless Chromium rendering test.
# Installs what is missing (npm ci; Debian's chromium when running as root), then runs both suites.
# Screenshots go to $ANYPHOTO_SCREENSHOT_DIR (default: <tmp>/anyphoto-web-tests).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null; then
    echo "run.sh: node is not installed (needs Node.js >= 20)" >&2
    exit 2
fi
if [ ! -d node_modules/playwright-core ]; then
    npm ci --no-audit --no-fund
fi
CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM_PATH" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "run.sh: $CHROMIUM_PATH is missing; install it: sudo apt-get install -y chromium" >&2
        exit 2
    fi
fi
export CHROMIUM_PATH

node --test placements.test.mjs render.test.mjs
