"""The one exception type pgrad raises for bad input; the CLI prints it as a one-line error."""

from __future__ import annotations

__all__ = ["PgradError"]


class PgradError(ValueError):
    """Bad input from the user: an unknown env id, an invalid option, an unreadable file.

    The message says what was wrong and what to do; it is meant to be shown as it is.
    """
