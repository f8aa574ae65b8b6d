"""Errors a user can fix. The CLI turns each into one line and exit code 2.

Every message names what was wrong (file, key, value) and how to fix it.
This module is a leaf: it imports nothing from the package.
"""


class GanSearchError(ValueError):
    """Base class for input errors that the user can correct."""


class SpaceError(GanSearchError):
    """A search-space file is missing, malformed or asks for something invalid."""


class ConfigError(GanSearchError):
    """A trial configuration value (from a space or `--set`) is invalid."""


class DataError(GanSearchError):
    """A dataset cannot be found, read, downloaded or built as asked."""
