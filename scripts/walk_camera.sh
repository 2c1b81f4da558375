#!/usr/bin/env bash
# The camera walked on a real X server (Xvfb + openbox), driven by the keyboard through xdotool, with a video
# file standing in for the camera: three classes built from captured pictures only (Ctrl+Shift+N, type the
# name; Ctrl+Shift+C; Camera ▸ Video file…; Alt+P for one picture, Space held for a burst), then the Live
# camera tab (Ctrl+Shift+P) on each video, and leave-one-out (Ctrl+L). Screenshots in OUT_DIR.
# Needs: apt-get install -y xvfb openbox xdotool imagemagick bc
#   python scripts/make_camera_videos.py ../shared/data/caltech-101/101_ObjectCategories.zip /tmp/videos
#   bash scripts/walk_camera.sh /tmp/videos [OUT_DIR]
set -u
cd "$(dirname "$0")/.."
VIDEOS=$(realpath "${1:?folder of videos made by scripts/make_camera_videos.py}"); OUT=${2:-walk-camera}
CLASSES=(airplanes ibis cougar_face)
mkdir -p "$OUT"
. scripts/_xsession.sh
start_x 98
.venv/bin/anil-studio > "$OUT"/app.log 2>&1 & APP=$!
for i in $(seq 1 200); do
  WID=$(xdotool search --name "ANIL Studio" 2>/dev/null | head -1)
  [ -n "$WID" ] && break; sleep 0.1
done
sleep 6
focus_main() { WID=$(xdotool search --name "^ANIL Studio|— ANIL Studio" | head -1); xdotool windowactivate --sync "$WID"; sleep 0.5; }
choose_video() {  # in a focused window with a “&Camera” picker: its last item, “Video file…”, then the path
  xdotool key --clearmodifiers alt+c; sleep 0.3; xdotool key alt+Down; sleep 0.5; xdotool key End Return; sleep 1.5
  xdotool type --delay 15 "$1"; sleep 0.3; xdotool key Return; sleep 2.5
}
n=0
for c in "${CLASSES[@]}"; do
  n=$((n + 1))
  focus_main
  xdotool key --clearmodifiers ctrl+shift+n; sleep 0.7
  xdotool type --delay 20 "$c"; xdotool key Return; sleep 0.7
  xdotool key --clearmodifiers ctrl+shift+c; sleep 1.5
  DLG=$(xdotool search --name "Camera — capture" | head -1); xdotool windowactivate --sync "$DLG"; sleep 0.3
  choose_video "$VIDEOS/$c.png"
  xdotool key --clearmodifiers alt+p; sleep 0.8                       # one picture (and the button has focus)
  xdotool keydown space; sleep 1.7; xdotool keyup space; sleep 1.5     # held: a burst
  import -window root "$OUT/$n-capture-$c.png"
  xdotool key Escape; sleep 2.5
done
focus_main
import -window root "$OUT"/4-support.png
xdotool key --clearmodifiers ctrl+shift+p; sleep 4
import -window root "$OUT"/5-live-${CLASSES[2]}.png
for i in 1 2; do  # the picker lists the recent videos newest first: the 2nd and 3rd are the other classes
  xdotool key --clearmodifiers alt+c; sleep 0.3; xdotool key alt+Down; sleep 0.5
  xdotool key Home; for _ in $(seq 1 "$i"); do xdotool key Down; done; xdotool key Return; sleep 4
  import -window root "$OUT/$((5 + i))-live-${CLASSES[$((2 - i))]}.png"
done
xdotool key --clearmodifiers ctrl+l; sleep 6
import -window root "$OUT"/8-leave-one-out.png
kill $APP; sleep 1; stop_x
ls "$OUT"; grep -v "^qt\.\|^Input\|^  " "$OUT"/app.log | tail -5
