"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class VoxgenError(Exception):
    """Base of the errors the CLI reports as one line (no traceback)."""

    exit_code = 2


class BadInput(VoxgenError):
    """A data file or event that cannot be used; the message names the file/event."""


class ConfigError(VoxgenError):
    """An unknown config key or a bad value; the message names the key."""
