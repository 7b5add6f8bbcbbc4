"""Errors a user can cause and fix: the CLI prints them as one line and exits non-zero."""


class VilemError(Exception):
    """A problem with the user's input (path, file, flag, config), stated so they can fix it."""

    exit_code = 2


class DataError(VilemError):
    """A dataset file, annotation or media item is missing, malformed or unsafe."""


class ConfigError(VilemError):
    """An unknown or badly typed configuration key, flag or spec entry."""


def one_line(text: str) -> str:
    """``text`` with its lines joined by spaces: an error message is one line (decoders and OS
    errors sometimes bring their own newlines)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())
