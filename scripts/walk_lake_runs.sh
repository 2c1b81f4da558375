#!/usr/bin/env bash
# Lake et al.'s 20 runs from the GUI on a real X server (Xvfb + openbox), driven by mouse and keyboard through
# xdotool, with screenshots: open the lake model, Model > Evaluate on a data set (Ctrl+Shift+L), type the data
# root (Alt+D), choose "Lake et al.'s 20 runs" in "Episodes drawn" (Alt+W, End), Run (Alt+R); the result line
# must be `lake-runs`' error, printed after it for comparison.
# Needs: apt-get install -y xvfb openbox xdotool imagemagick
#   bash scripts/walk_lake_runs.sh OMNIGLOT_DATA_ROOT [OUT_DIR]
set -u
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?folder holding Omniglot}"); OUT=${2:-walk-screens}
mkdir -p "$OUT"
. scripts/_xsession.sh
start_x 97
.venv/bin/anil-studio gui --checkpoint models/omniglot-lake-anil.pt > "$OUT"/app.log 2>&1 & APP=$!
for i in $(seq 1 150); do
  WID=$(xdotool search --name "^ANIL Studio" 2>/dev/null | head -1)
  [ -n "$WID" ] && break; sleep 0.1
done
sleep 4
xdotool windowactivate --sync "$WID"; sleep 0.5
xdotool key --clearmodifiers ctrl+shift+l; sleep 2
xdotool key --clearmodifiers alt+d; sleep 0.3                         # Data root
xdotool type --delay 10 "$DATA"
xdotool key --clearmodifiers alt+w; sleep 0.3                         # Episodes drawn
xdotool key End; sleep 0.5                                            # its last entry: Lake et al.'s 20 runs
import -window root "$OUT"/1-lake-runs-chosen.png
xdotool key --clearmodifiers alt+r                                    # Run
sleep 45                                                              # 20 runs: about 20 s alone
import -window root "$OUT"/2-lake-runs-done.png
kill $APP; sleep 1; stop_x
echo "screenshots in $OUT; the CLI's numbers for comparison:"
.venv/bin/anil-studio lake-runs --checkpoint models/omniglot-lake-anil.pt --data-root "$DATA" --quiet | head -2
