"""Project error types. Every message says what was found and what to do."""

from __future__ import annotations

import errno


class AnilError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(AnilError, ValueError):
    """A configuration value is out of range or inconsistent."""


class DataError(AnilError):
    """A data root, image file or split file is missing or unreadable."""


class NotEnoughImages(ConfigError, DataError):
    """Fewer than 2 classes have a readable image: there is nothing to adapt a head to."""


class CheckpointError(AnilError):
    """A checkpoint file is missing, truncated, foreign or of another version."""


class ExportError(AnilError):
    """An export failed or did not verify."""


SETUP_FIX = "run `bash scripts/setup.sh` (it installs every dependency from the package index)"


_OS_FIXES = {
    errno.ENOENT: "check that it exists (it may have been moved or renamed)",
    errno.EACCES: "check its permissions (e.g. chmod u+rwx for a folder, u+rw for a file)",
    errno.EPERM: "check its permissions (e.g. chmod u+rwx for a folder, u+rw for a file)",
    errno.ENOSPC: "free some disk space and try again",
    errno.EDQUOT: "free some disk space (you are over your quota) and try again",
    errno.EROFS: "it is on a read-only disk; choose a folder on a writable one",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.ELOOP: "it is a symbolic link loop; fix or remove the link",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter one",
    errno.EIO: "the disk reported a read/write failure; check the drive",
}


def os_message(exc: OSError, path: object = None, doing: str = "") -> str:
    """The one wording of a file-system failure: the path, what failed, why, and what to do.

    `path` defaults to the file the OS named; `doing` (e.g. "cannot write there") replaces the
    generic "cannot be used".
    """
    where = path if path is not None else (exc.filename or "a file")
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = _OS_FIXES.get(exc.errno or -1, "check that it exists and can be read or written")
    return f"{where}: {doing or 'cannot be used'} ({reason}); {fix}"
