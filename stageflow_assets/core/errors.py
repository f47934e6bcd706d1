"""Errors a stage raises on purpose; the stage runtime turns them into Dagster failures."""

from __future__ import annotations

from typing import Any


class StageError(Exception):
    """A failure with a one-line message a user can act on and details for the metadata."""

    retryable = True

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadInputError(StageError):
    """The input itself is unusable: retrying cannot help."""

    retryable = False


class ProviderError(StageError):
    """A tool or service failed; a retry may help (timeouts, flaky services)."""
