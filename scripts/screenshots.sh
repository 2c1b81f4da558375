#!/usr/bin/env bash
# Screenshots of the real app on a virtual X screen (needs: apt-get install -y xvfb libxcb-icccm4
# libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0).
#   bash scripts/screenshots.sh [args for scripts/screenshots.py, e.g. --caltech DIR or --omniglot DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
Xvfb :99 -screen 0 1600x1000x24 >/dev/null 2>&1 &
XVFB=$!
trap 'kill $XVFB' EXIT
sleep 1
DISPLAY=:99 QT_QPA_PLATFORM=xcb .venv/bin/python scripts/screenshots.py "$@"
