"""Errors a stage raises on purpose; the stage runtime turns them into Dagster failures."""

from __future__ import annotations

import math
from datetime import datetime, timezone
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


class ToolRefusedError(ProviderError):
    """A tool refused the job for a reason it will give again (a codec its output cannot hold,
    an input it cannot parse): retrying cannot help."""

    retryable = False


class CircuitOpenError(ProviderError):
    """A provider's circuit breaker is open: the call was not made (providers/breaker.py).

    Not retryable through a step's RetryPolicy: a retry a second later meets the same open
    circuit. `wait_retries` > 0 asks for a retry once the cool-down is over instead
    (`dg.RetryRequested(max_retries=wait_retries, seconds_to_wait=seconds_left())`)."""

    retryable = False

    def __init__(self, message: str, *, provider: str, until: datetime, wait_retries: int = 0,
                 **details: Any) -> None:
        super().__init__(message, provider=provider, **details)
        self.provider = provider
        self.until = until
        self.wait_retries = wait_retries

    def seconds_left(self) -> float:
        """Seconds until the trial call may be made (at least 1: Dagster needs a real wait)."""
        left = (self.until - datetime.now(timezone.utc)).total_seconds()
        return float(max(1, math.ceil(left)))
