#!/usr/bin/env bash
# The main flow walked on a real X server (Xvfb + openbox), driven by the keyboard through xdotool, with
# screenshots: open on the default model, Add folder... (Ctrl+Shift+I), Classify a folder (Ctrl+Shift+K),
# leave-one-out (Ctrl+L). Needs: apt-get install -y xvfb openbox xdotool imagemagick bc
#   bash scripts/walk_gui.sh SUPPORT_DIR QUERY_DIR [OUT_DIR]
# CHECKPOINT=models/omniglot-lake-anil.pt opens that model instead of the default one.
set -u
cd "$(dirname "$0")/.."
SUPPORT=${1:?support folder of class folders}; QUERY=${2:?folder of photos to classify}; OUT=${3:-walk-screens}
mkdir -p "$OUT"
. scripts/_xsession.sh
start_x 99
.venv/bin/anil-studio ${CHECKPOINT:+gui --checkpoint "$CHECKPOINT"} > "$OUT"/app.log 2>&1 & APP=$!
t0=$(date +%s.%N)
for i in $(seq 1 100); do
  WID=$(xdotool search --name "ANIL Studio" 2>/dev/null | head -1)
  [ -n "$WID" ] && break; sleep 0.1
done
echo "window after $(echo "$(date +%s.%N) - $t0" | bc) s: $WID"
sleep 4
import -window root "$OUT"/1-start.png
xdotool windowactivate --sync "$WID"; sleep 0.5
# Add folder... (Ctrl+Shift+I): type the support folder in Qt's file dialog
xdotool key --clearmodifiers ctrl+shift+i; sleep 2
xdotool type --delay 20 "$(realpath "$SUPPORT")"; sleep 0.5; xdotool key Return; sleep 1
import -window root "$OUT"/2-dialog.png
xdotool key Return; sleep 6
import -window root "$OUT"/3-support.png
# Classify a folder (Ctrl+Shift+K)
WID=$(xdotool search --name "ANIL Studio" | head -1); xdotool windowactivate --sync "$WID"
xdotool key --clearmodifiers ctrl+shift+k; sleep 2
xdotool type --delay 20 "$(realpath "$QUERY")"; sleep 0.5; xdotool key Return; sleep 1; xdotool key Return; sleep 8
import -window root "$OUT"/4-classified.png
xdotool key --clearmodifiers ctrl+l; sleep 5
import -window root "$OUT"/5-leave-one-out.png
kill $APP; sleep 1; stop_x
tail -5 "$OUT"/app.log
