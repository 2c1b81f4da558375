"""The start-up check of the system libraries Qt's X11 platform needs (a fresh Debian lacks some)."""

from __future__ import annotations

import subprocess

import pytest

from app import qt_check

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f)
\tlibxcb-keysyms.so.1 => not found
"""


def fake_ldd(monkeypatch, output: str) -> None:
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/ldd")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, output, ""))


def test_missing_libraries_are_named_with_their_packages_and_the_command(monkeypatch, tmp_path):
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"\x7fELF")
    fake_ldd(monkeypatch, LDD_OUTPUT)
    assert qt_check.missing_libraries(str(plugin)) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    problem = qt_check.display_problem("xcb", str(plugin))
    assert "libxcb-icccm.so.4" in problem and "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1" in problem
    assert qt_check.display_problem("offscreen", str(plugin)) is None  # only the X11 platform needs them


def test_nothing_missing_means_no_problem(monkeypatch, tmp_path):
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"\x7fELF")
    fake_ldd(monkeypatch, "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)\n")
    assert qt_check.missing_libraries(str(plugin)) == []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(qt_check, "x_display_opens", lambda display: True)
    assert qt_check.display_problem("", str(plugin)) is None


def test_no_screen_or_a_display_that_does_not_answer_is_said_instead_of_qts_abort(monkeypatch, tmp_path):
    """Before: Qt's "could not connect to display", "xcb-cursor0 is needed" (it was there) and an abort."""
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"\x7fELF")
    fake_ldd(monkeypatch, "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)\n")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    problem = qt_check.display_problem("", str(plugin))
    assert "no screen (neither DISPLAY nor WAYLAND_DISPLAY is set)" in problem and "xvfb-run" in problem
    assert "anil-studio --help" in problem
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert qt_check.display_problem("", str(plugin)) is None  # Qt takes its Wayland platform
    monkeypatch.setenv("DISPLAY", ":4242")
    monkeypatch.setattr(qt_check, "x_display_opens", lambda display: False)
    assert "no X server answers at DISPLAY=:4242" in qt_check.display_problem("xcb", str(plugin))
    monkeypatch.setattr(qt_check, "x_display_opens", lambda display: None)  # cannot tell: let Qt try
    assert qt_check.display_problem("xcb", str(plugin)) is None


@pytest.mark.skipif(__import__("ctypes.util").util.find_library("X11") is None, reason="needs libX11")
def test_a_display_where_no_x_server_runs_does_not_open():
    assert qt_check.x_display_opens(":4242") is False


def test_without_ldd_loading_the_plugin_names_the_first_missing_library(monkeypatch, tmp_path):
    import ctypes
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)

    def refuse(path):
        raise OSError("libxcb-cursor.so.0: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    assert qt_check.missing_libraries(str(tmp_path / "libqxcb.so")) == ["libxcb-cursor.so.0"]
    assert qt_check.packages_for(["libxcb-cursor.so.0", "libunknown.so.9"]) == ["libunknown.so.9", "libxcb-cursor0"]


def test_the_app_stops_with_the_message_instead_of_qts_abort(monkeypatch, capsys):
    from app import main as app_main

    monkeypatch.setattr(qt_check, "display_problem", lambda platform, plugin=None: "missing libxcb-icccm.so.4")
    assert app_main.main() == 1
    assert "missing libxcb-icccm.so.4" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="Linux X11 plugin")
def test_the_real_plugin_is_checked():
    assert qt_check._xcb_plugin() is not None
    assert isinstance(qt_check.missing_libraries(), list)


# -- Qt Multimedia (the camera) ---------------------------------------------------------------------------------
def test_a_missing_multimedia_library_is_named_with_its_package(monkeypatch):
    fake_ldd(monkeypatch, "\tlibpulse.so.0 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n")
    assert qt_check.multimedia_missing() == ["libpulse.so.0"]
    problem = qt_check.multimedia_problem()
    assert "libpulse.so.0" in problem and "sudo apt-get install -y libpulse0" in problem


def test_addons_of_another_release_than_essentials_are_named(monkeypatch):
    from importlib import metadata

    versions = {"PySide6-Essentials": "6.11.3", "PySide6-Addons": "6.10.0"}
    monkeypatch.setattr(metadata, "version", versions.__getitem__)
    problem = qt_check.multimedia_problem()
    assert "PySide6-Addons 6.10.0 does not match PySide6-Essentials 6.11.3" in problem
    assert "pip install PySide6-Addons==6.11.3" in problem


def test_without_addons_the_camera_names_the_package(monkeypatch):
    from importlib import metadata

    def version(name):
        if name == "PySide6-Addons":
            raise metadata.PackageNotFoundError(name)
        return "6.11.3"

    monkeypatch.setattr(metadata, "version", version)
    assert "needs PySide6-Addons" in qt_check.multimedia_problem()


def test_the_app_starts_with_a_camera_problem_named_in_messages(monkeypatch, qtbot, tmp_path, checkpoint):
    """A camera that cannot work never stops the app: the window opens and Messages says why."""
    from PySide6.QtWidgets import QApplication

    from app import main as app_main

    monkeypatch.setattr("app.frames.multimedia_error", lambda: "the camera needs PySide6-Addons")
    monkeypatch.setattr(QApplication, "exec", lambda self: 0)
    shown = []
    monkeypatch.setattr("app.window.MainWindow.show", lambda self: shown.append(self))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert app_main.main(str(checkpoint)) == 0
    (window,) = shown
    QApplication.processEvents()  # the camera is checked once the window is on screen
    texts = [window.errors.log.item(i).text() for i in range(window.errors.log.count())]
    assert any("the camera needs PySide6-Addons" in t for t in texts)
    window.wait_for_jobs()
    window.session.confirm_discard = lambda: True
    window.close()


def test_the_terminal_shows_our_messages_but_not_other_libraries_chatter(monkeypatch, capsys):
    """The app's terminal: its own INFO lines (as in Messages) and every library's warnings, not their INFO.

    At INFO the ONNX exporter printed a hundred lines of graph rewrites at a model's first start.
    """
    import logging

    from app.main import OUR_LOGGERS, log_to_terminal

    for name in ("", "onnxscript", *OUR_LOGGERS):  # restored after the test
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    handler = logging.StreamHandler()  # what basicConfig adds when the root has no handler yet (not in pytest)
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    log_to_terminal()
    logging.getLogger("onnxscript").info("Applied 100 of general pattern rewrite rules.")
    logging.getLogger("onnxscript").warning("a library's warning")
    logging.getLogger("anil_studio").info("Ready: the model is loaded")
    logging.getLogger("anil_engine.meta.fused").info("loading the fused CPU kernel")
    err = capsys.readouterr().err
    assert "rewrite rules" not in err
    assert "a library's warning" in err and "Ready: the model is loaded" in err and "fused CPU kernel" in err
