"""A self-check of the Qt binding at start: some releases break reference counting and crash later.

PySide6 6.12.0 returns None from every call that returns nothing without taking a reference to it. From
Python 3.12 None is immortal and nothing happens; on 3.11 each call lowers None's count until the
interpreter aborts ("deallocating None"), in the middle of a long session. `pyproject.toml` excludes
that release; this check names the problem for an installation made another way.
"""

from __future__ import annotations

import sys

CALLS = 200


def none_refcount_leak_per_call() -> float:
    """References to None lost per `QLabel.setText` call (0.0 for a sound binding; -1.0 for the broken one)."""
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        label.setText("x")
    return (sys.getrefcount(None) - before) / CALLS


def binding_problem() -> str | None:
    """A message naming the broken binding and the fix, or None when it is sound."""
    if sys.version_info >= (3, 12) or none_refcount_leak_per_call() > -0.5:
        return None
    import PySide6

    return (
        f"PySide6 {PySide6.__version__} on Python {sys.version_info.major}.{sys.version_info.minor} loses a "
        "reference to None in every Qt call, which crashes the app after a while; run `bash scripts/setup.sh` "
        "(it installs a release without this bug) or `pip install 'PySide6-Essentials!=6.12.*'`"
    )


# The shared libraries Qt's X11 platform plugin (libqxcb.so) loads, and the Debian/Ubuntu packages that hold them.
XCB_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libpulse.so.0": "libpulse0",  # Qt Multimedia (the camera) links it even where no sound is played
}
MULTIMEDIA_LIBRARIES = ("lib/libQt6Multimedia.so.6", "plugins/multimedia/libffmpegmediaplugin.so")


def _xcb_plugin() -> str | None:
    from pathlib import Path

    import PySide6

    path = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return str(path) if path.is_file() else None


def missing_libraries(plugin: str | None = None) -> list[str]:
    """Shared libraries the X11 platform plugin needs that the system lacks (sonames; [] when all load).

    `ldd` lists every missing one at once; without it, loading the plugin names the first.
    """
    import ctypes
    import re
    import shutil
    import subprocess

    plugin = plugin or _xcb_plugin()
    if plugin is None:
        return []
    if shutil.which("ldd"):
        try:
            out = subprocess.run(["ldd", plugin], capture_output=True, text=True, timeout=20).stdout
            found = sorted(set(re.findall(r"^\s*(\S+) => not found", out, re.MULTILINE)))
            if found or "=>" in out:
                return found
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        ctypes.CDLL(plugin)
    except OSError as exc:
        m = re.match(r"(\S+\.so[.\d]*): cannot open shared object file", str(exc))
        return [m.group(1)] if m else [str(exc)]
    return []


def multimedia_missing() -> list[str]:
    """Shared libraries Qt Multimedia needs that the system lacks (sonames; [] when all load or it is absent)."""
    from pathlib import Path

    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    found = [qt / lib for lib in MULTIMEDIA_LIBRARIES if (qt / lib).is_file()]
    return sorted({soname for lib in found for soname in missing_libraries(str(lib))})


def multimedia_problem() -> str | None:
    """Why the camera cannot work here (the Qt Multimedia package, its version, its system libraries), or None."""
    from importlib import metadata

    try:
        essentials, addons = metadata.version("PySide6-Essentials"), metadata.version("PySide6-Addons")
    except metadata.PackageNotFoundError:
        return "the camera needs PySide6-Addons (Qt Multimedia), which is not installed; run `bash scripts/setup.sh`"
    if essentials != addons:
        return (
            f"PySide6-Addons {addons} does not match PySide6-Essentials {essentials}, so the camera cannot load; "
            f"run `bash scripts/setup.sh` or `pip install PySide6-Addons=={essentials}`"
        )
    missing = multimedia_missing() if sys.platform.startswith("linux") else []
    if missing:
        return (
            f"the camera needs system libraries that are missing here ({', '.join(missing)}); install them with "
            f"`sudo apt-get install -y {' '.join(packages_for(missing))}` (or run `bash scripts/setup.sh` as root)"
        )
    try:
        import PySide6.QtMultimedia  # noqa: F401 - the import is the check
    except ImportError as exc:
        return f"the camera cannot load Qt Multimedia ({exc}); run `bash scripts/setup.sh`"
    return None


def packages_for(sonames: list[str]) -> list[str]:
    """The apt packages holding `sonames` (a library we do not know is named as itself)."""
    return sorted({XCB_PACKAGES.get(s, s) for s in sonames})


def display_problem(platform: str, plugin: str | None = None) -> str | None:
    """For the X11 platform: which system libraries are missing and the command that installs them; else None."""
    if platform not in ("", "xcb"):
        return None
    import os

    if platform == "" and os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return None  # a Wayland session without X: Qt uses its Wayland platform, not these libraries
    missing = missing_libraries(plugin)
    if missing:
        command = "sudo apt-get install -y " + " ".join(packages_for(missing))
        return (
            f"ANIL Studio cannot open its window: Qt's X11 platform needs system libraries that are missing here "
            f"({', '.join(missing)}). Install them with:\n\n    {command}\n\n"
            "(or run `bash scripts/setup.sh` as root, which installs them), then start the app again."
        )
    display = os.environ.get("DISPLAY", "")
    if not display:
        where = "neither DISPLAY nor WAYLAND_DISPLAY is set" if platform == "" else "DISPLAY is not set"
        return f"ANIL Studio cannot open its window: this session has no screen ({where}).\n{NO_SCREEN_HELP}"
    if x_display_opens(display) is False:
        return (
            f"ANIL Studio cannot open its window: no X server answers at DISPLAY={display} (it is not running, "
            f"or this user may not use it: see `xhost` and XAUTHORITY).\n{NO_SCREEN_HELP}"
        )
    return None


NO_SCREEN_HELP = (
    "Start it in a desktop session, over SSH with `ssh -X`, or on a virtual screen: `xvfb-run .venv/bin/anil-studio`. "
    "Every flow of the app is also a command that needs no screen: `.venv/bin/anil-studio --help`."
)


def x_display_opens(display: str) -> bool | None:
    """Whether an X server accepts a connection at `display` (None: cannot tell, libX11 is not loadable)."""
    import ctypes

    try:
        x11 = ctypes.CDLL("libX11.so.6")
    except OSError:
        return None
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    handle = x11.XOpenDisplay(display.encode())
    if not handle:
        return False
    x11.XCloseDisplay(handle)
    return True


if __name__ == "__main__":
    # `python -m app.qt_check --packages`: the apt packages the X11 platform still needs (scripts/setup.sh).
    # `--packages multimedia`: only those of Qt Multimedia (the tests use it; they need no X11).
    if sys.argv[1:2] == ["--packages"]:
        camera = multimedia_missing()
        print(" ".join(packages_for(camera if sys.argv[2:] == ["multimedia"] else missing_libraries() + camera)))
