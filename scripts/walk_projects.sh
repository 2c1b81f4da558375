#!/usr/bin/env bash
# Projects walked on a real X server (Xvfb + openbox), by the keyboard through xdotool, with screenshots:
# add a support folder, classify, Save project as (Ctrl+Shift+S), Save self-contained project (Ctrl+Alt+S),
# New project (Ctrl+N), then open the first project after its images moved and locate them (Locate images…).
# Needs: apt-get install -y xvfb openbox xdotool imagemagick
#   bash scripts/walk_projects.sh SUPPORT_DIR QUERY_DIR [OUT_DIR]
set -u
cd "$(dirname "$0")/.."
SUPPORT=${1:?support folder of class folders}; QUERY=${2:?folder of photos to classify}; OUT=${3:-walk-projects}
mkdir -p "$OUT"; OUT=$(realpath "$OUT")
WORK=$(mktemp -d); cp -r "$SUPPORT" "$WORK/photos"
. scripts/_xsession.sh
start_x 98
.venv/bin/anil-studio > "$OUT"/app.log 2>&1 & APP=$!
for i in $(seq 1 100); do WID=$(xdotool search --name "ANIL Studio" 2>/dev/null | head -1); [ -n "$WID" ] && break; sleep 0.1; done
sleep 5
activate() { WID=$(xdotool search --name "ANIL Studio —" | head -1); xdotool windowactivate --sync "$WID"; sleep 0.5; }
choose() { xdotool type --delay 15 "$1"; sleep 0.5; xdotool key Return; sleep 1; }
shot() { import -window root "$OUT/$1.png"; echo "$1: $(xdotool getwindowname "$(xdotool search --name 'ANIL Studio —' | head -1)")"; }
activate; xdotool key --clearmodifiers ctrl+shift+i; sleep 2; choose "$WORK/photos"; xdotool key Return; sleep 8
activate; xdotool key --clearmodifiers ctrl+shift+k; sleep 2; choose "$(realpath "$QUERY")"; xdotool key Return; sleep 8
shot 1-classified
activate; xdotool key --clearmodifiers ctrl+shift+s; sleep 2; choose "$WORK/birds.anilproj"; sleep 1
shot 2-saved-as
activate; xdotool key --clearmodifiers ctrl+alt+s; sleep 2; choose "$WORK/birds-bundle"; sleep 4
shot 3-self-contained
ls -R "$WORK/birds-bundle" | head -8
activate; xdotool key --clearmodifiers ctrl+n; sleep 2
shot 4-new-project
mv "$WORK/photos" "$WORK/moved-photos"
activate; xdotool key --clearmodifiers ctrl+shift+o; sleep 2; choose "$WORK/birds.anilproj"; sleep 3
shot 5-missing
BOX=$(xdotool search --name "Missing images" | head -1)
xdotool windowactivate --sync "$BOX"; sleep 0.5; xdotool key Return; sleep 2
choose "$WORK/moved-photos"; xdotool key Return; sleep 6
shot 6-located
kill $APP; sleep 1; stop_x
grep -v "^DEBUG" "$OUT"/app.log | tail -5
rm -rf "$WORK"
