"""Project error types. Every message says what was found and what to do."""

from __future__ import annotations


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
