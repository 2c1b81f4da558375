#!/usr/bin/env bash
# The bad-input corpus walked through the app on a real X server (Xvfb + openbox) with the keyboard (xdotool):
# Add folder… (Ctrl+Shift+I) on the corpus's support folder, then Classify a folder… (Ctrl+Shift+K) on its
# query folder. Checks that the app is still running and that every bad file is named in Messages (which
# the app also prints to its terminal), and takes screenshots. Needs: apt-get install -y xvfb openbox xdotool imagemagick
#   bash scripts/walk_bad_inputs.sh [OUT_DIR]
set -u
cd "$(dirname "$0")/.."
OUT=${1:-walk-bad-inputs}
mkdir -p "$OUT"
CORPUS=$(mktemp -d)
.venv/bin/python scripts/make_bad_corpus.py "$CORPUS" > "$OUT"/expected.tsv
. scripts/_xsession.sh
start_x 96
.venv/bin/anil-studio > "$OUT"/app.log 2>&1 & APP=$!
sleep 8
focus() { WID=$(xdotool search --name "ANIL Studio" | head -1); xdotool windowactivate --sync "$WID"; sleep 0.5; }
choose_folder() {  # a shortcut that opens a folder dialog, then the folder's path
  focus; xdotool key --clearmodifiers "$1"; sleep 2
  xdotool type --delay 15 "$2"; sleep 0.3; xdotool key Return; sleep 1; xdotool key Return; sleep 8
}
choose_folder ctrl+shift+i "$CORPUS/support"
import -window root "$OUT"/1-support.png
choose_folder ctrl+shift+k "$CORPUS/queries"
import -window root "$OUT"/2-classified.png
status=0
if kill -0 "$APP" 2>/dev/null; then echo "app: still running"; else echo "app: NOT running"; status=1; fi
while IFS=$'\t' read -r name words; do
  if grep -F -- "$name" "$OUT"/app.log | grep -qF -- "$words"; then echo "named: $name"
  else echo "NOT NAMED: $name ($words)"; status=1; fi
done < "$OUT"/expected.tsv
kill "$APP" 2>/dev/null; sleep 1; stop_x
rm -rf "$CORPUS"
exit $status
