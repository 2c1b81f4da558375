# Sourced by the walk scripts: a virtual X screen with a window manager, and settings of its own.
#   start_x DISPLAY_NUMBER [WxH]   starts Xvfb (1280x800 unless given) and openbox; stop_x stops them.
start_x() {
  export DISPLAY=":$1"
  Xvfb "$DISPLAY" -screen 0 "${2:-1280x800}x24" >/dev/null 2>&1 & XV=$!
  sleep 1
  openbox >/dev/null 2>&1 & OB=$!
  sleep 1
  # A settings and data folder of its own: no saved geometry, recent files or autosave of yours is touched.
  XDG_CONFIG_HOME=$(mktemp -d); XDG_DATA_HOME=$(mktemp -d); export XDG_CONFIG_HOME XDG_DATA_HOME
  unset QT_QPA_PLATFORM
}
stop_x() { kill "$OB" "$XV"; }
