"""The one wording of file-system failures (anil_engine.errors.os_message), used by the engine, CLI and app."""

from __future__ import annotations

import errno
import os

import pytest

from anil_engine.errors import os_message


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.ENOENT, "check that it exists"),
        (errno.EACCES, "check its permissions"),
        (errno.ENOSPC, "free some disk space"),
        (errno.EROFS, "read-only disk"),
        (errno.ELOOP, "symbolic link loop"),
        (errno.ENOTDIR, "a part of the path is a file"),
    ],
)
def test_every_os_failure_names_the_path_the_reason_and_a_fix(code, fix):
    exc = OSError(code, os.strerror(code), "/data/photos/cat.png")
    text = os_message(exc, doing="cannot be read")
    assert text.startswith("/data/photos/cat.png: cannot be read (")
    assert os.strerror(code) in text
    assert fix in text


def test_an_unknown_failure_still_names_the_path_and_a_fix():
    exc = OSError(errno.EBUSY, os.strerror(errno.EBUSY))
    assert os_message(exc, "/x/y.pt") == (
        f"/x/y.pt: cannot be used ({os.strerror(errno.EBUSY)}); check that it exists and can be read or written"
    )


def test_the_cli_top_level_turns_an_unexpected_oserror_into_that_message(monkeypatch, capsys):
    from anil_engine import cli

    def boom(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/full/disk/out.pt")

    monkeypatch.setattr(cli, "build_parser", _parser_running(boom))
    assert cli.main(["anything"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: /full/disk/out.pt: cannot be used ({os.strerror(errno.ENOSPC)}); " + (
        "free some disk space and try again"
    )
    assert "Traceback" not in err


def _parser_running(run):
    import argparse

    def build():
        parser = argparse.ArgumentParser()
        parser.add_argument("word")
        parser.set_defaults(run=run)
        return parser

    return build
