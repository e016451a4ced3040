"""The launcher's one exception type."""

from __future__ import annotations


class LaunchError(RuntimeError):
    """A part of the local stack could not be started, reached or stopped.

    The message says which part, why, and (where there is one) ends with the tail of its log.
    """
