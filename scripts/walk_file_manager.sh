#!/usr/bin/env bash
# Real drops from another program: a file manager (PCManFM, GTK) beside the app on a virtual X screen (Xvfb +
# openbox); the mouse (xdotool) drags the support folder's class folders onto the support set, then every photo of
# the query folder onto Classify, as a person would. Exports the results (Ctrl+E) and checks that every photo
# was classified, counting those whose file name starts with the class the app gave. Screenshots in OUT_DIR.
# Needs: apt-get install -y xvfb openbox xdotool imagemagick pcmanfm
#   bash scripts/walk_file_manager.sh SUPPORT_DIR QUERY_DIR [OUT_DIR]
set -u
cd "$(dirname "$0")/.."
SUPPORT=$(realpath "${1:?support folder of class folders}"); QUERY=$(realpath "${2:?folder of photos}")
OUT=$(realpath -m "${3:-walk-file-manager}")
mkdir -p "$OUT"; rm -f "$OUT"/results.csv
command -v pcmanfm >/dev/null || { echo "needs pcmanfm: apt-get install -y pcmanfm" >&2; exit 2; }
. scripts/_xsession.sh
start_x 94 1600x1000
.venv/bin/anil-studio > "$OUT"/app.log 2>&1 & APP=$!
for _ in $(seq 1 100); do WID=$(xdotool search --onlyvisible --name "ANIL Studio" 2>/dev/null | head -1); [ -n "$WID" ] && break; sleep 0.2; done
sleep 6
xdotool windowmove --sync "$WID" 0 0
# The file manager to the right of the app's support set, its side pane hidden (F9): the first icon is then
# at a fixed place in its window.
pcmanfm --no-desktop "$SUPPORT" > "$OUT"/pcmanfm.log 2>&1 & FM=$!
for _ in $(seq 1 50); do FMW=$(xdotool search --onlyvisible --class pcmanfm 2>/dev/null | tail -1); [ -n "$FMW" ] && break; sleep 0.2; done
sleep 2
xdotool windowsize --sync "$FMW" 420 600; xdotool windowmove --sync "$FMW" 1180 0
xdotool windowactivate --sync "$FMW"; xdotool key F9; sleep 1
eval "$(xdotool getwindowgeometry --shell "$WID")"; AX=$X; AY=$Y; AW=$WIDTH; AH=$HEIGHT
echo "app window $WID at $AX,$AY, $AW x $AH; file manager $FMW"
FIRST_X=$((1180 + 50)); FIRST_Y=120  # the first icon of the file manager's view
drag_all_to() {  # select everything in the file manager, drag it to (x, y) in steps, drop
  xdotool windowactivate --sync "$FMW"; xdotool mousemove "$FIRST_X" "$FIRST_Y" click 1; sleep 0.3
  xdotool key ctrl+a; sleep 1.5  # past the double-click time: the press below starts a drag
  xdotool mousemove "$FIRST_X" "$FIRST_Y" mousedown 1; sleep 0.3
  for dx in 4 10 20; do xdotool mousemove $((FIRST_X - dx)) "$FIRST_Y"; sleep 0.15; done  # past the drag threshold
  for step in $(seq 1 16); do
    xdotool mousemove $((FIRST_X + (step * ($1 - FIRST_X)) / 16)) $((FIRST_Y + (step * ($2 - FIRST_Y)) / 16)); sleep 0.1
  done
  sleep 0.5; xdotool mouseup 1
}
import -window root "$OUT"/1-side-by-side.png
drag_all_to $((AX + AW * 40 / 100)) $((AY + AH * 45 / 100))  # the support set
sleep 10
import -window root "$OUT"/2-support-dropped.png
xdotool windowactivate --sync "$FMW"; xdotool key ctrl+l; sleep 0.3; xdotool type --delay 10 "$QUERY"; xdotool key Return
sleep 3
drag_all_to $((AX + AW * 75 / 100)) $((AY + AH * 55 / 100))  # Classify's results
sleep 12
import -window root "$OUT"/3-classified.png
xdotool windowactivate --sync "$WID"; xdotool key --clearmodifiers ctrl+e; sleep 2
xdotool type --delay 15 "$OUT/results.csv"; xdotool key Return; sleep 3
kill "$FM" "$APP"; sleep 1; stop_x
status=0
if [ -s "$OUT"/results.csv ]; then
  .venv/bin/python - "$OUT"/results.csv "$QUERY" <<'PY' || status=1
import csv, sys
from pathlib import Path
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
photos = sorted(p for p in Path(sys.argv[2]).iterdir() if p.is_file())
right = sum(Path(r["path"]).name.startswith(r["label"]) for r in rows)
print(f"classified {len(rows)} of {len(photos)} dropped photos; {right} named by the class their file name starts with")
sys.exit(0 if len(rows) == len(photos) else 1)
PY
else
  echo "no results exported: the drops did not arrive"; status=1
fi
exit $status
