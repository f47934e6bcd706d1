"""Retries for the HTTP providers, left to urllib3: a `requests.Session` whose adapter carries a
`urllib3.util.Retry` (connect, read and status retries, exponential backoff with jitter,
Retry-After), and the name of what the last try ran into for the providers' one-line errors.

Import this where a request is made: requests and urllib3 cost ~40 ms of start-up otherwise.
With `raise_on_status=False` a status the provider retries comes back as the last response once
the retries are spent, so a caller that gets one knows it got `retries + 1` of them.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ReadTimeoutError
from urllib3.util import Retry

SERVER_ERRORS = frozenset(range(500, 600))
BUSY = SERVER_ERRORS | {429}
RETRY_AFTER_MAX_S = 30.0  # a server asking for longer is better answered with an error now
JITTER = 0.5  # of backoff_s, added at random so that parallel clients do not retry in step


class _Retry(Retry):
    """urllib3's Retry with three policy changes the providers relied on before."""

    def get_backoff_time(self) -> float:
        # urllib3 retries the first failure at once; a busy or starting service needs the pause more
        # than a flaky network does, so the first retry waits backoff_factor, then 2x, 4x...
        failures = len(self.history)  # requests follows redirects itself: none are in here
        if not failures:
            return 0.0
        wait = self.backoff_factor * 2 ** (failures - 1) + random.random() * self.backoff_jitter
        return min(self.backoff_max, wait)

    def parse_retry_after(self, retry_after: str) -> float:
        # decimal seconds are common from local servers; an unreadable header falls back to the
        # backoff (0 means "no Retry-After") instead of failing a request that got an answer
        try:
            seconds = float(retry_after)
        except ValueError:
            try:
                seconds = super().parse_retry_after(retry_after)
            except InvalidHeader:
                return 0.0
        return min(max(seconds, 0.0), RETRY_AFTER_MAX_S) if math.isfinite(seconds) else 0.0

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        # urllib3 also retries 413/429/503 that carry Retry-After: only the provider's statuses are
        return status_code in (self.status_forcelist or ()) and super().is_retry(method, status_code,
                                                                                    has_retry_after)


def retrying_session(retries: int, backoff_s: float, statuses: frozenset[int] = SERVER_ERRORS, *,
                     resend_after_read_error: bool = True) -> requests.Session:
    """A session that tries each request up to `retries + 1` times: after a refused or timed-out
    connection, a read error (unless `resend_after_read_error` is False: a request that may have
    been acted on is then not sent again) or an answer with a status in `statuses`. Retry `n`
    waits `backoff_s * 2**(n-1)` plus up to half `backoff_s`, or what Retry-After asks (≤ 30 s).
    Use it as a context manager: it holds the connection pool."""
    retry = _Retry(total=retries, connect=retries, read=retries if resend_after_read_error else False,
                   status=retries, other=retries, backoff_factor=backoff_s, backoff_jitter=backoff_s * JITTER,
                   status_forcelist=statuses, allowed_methods=None, raise_on_status=False,
                   respect_retry_after_header=True)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _gave_up(exc: requests.RequestException) -> MaxRetryError | None:
    cause = exc.args[0] if exc.args else None
    return cause if isinstance(cause, MaxRetryError) else None


def failure_name(exc: requests.RequestException) -> str:
    """What the last try ran into, named as requests names it when it does not retry: spent read
    retries come back as a ConnectionError wrapping the ReadTimeoutError."""
    spent = _gave_up(exc)
    if spent is not None and isinstance(spent.reason, ReadTimeoutError):
        return "ReadTimeout"
    return type(exc).__name__


def retries_spent(exc: requests.RequestException) -> bool:
    """False when urllib3 raised at the first failure it may not retry (a read error with
    `resend_after_read_error=False`), however many connects had failed before it."""
    return _gave_up(exc) is not None


def post_retrying(url: str, retries: int, backoff_s: float, statuses: frozenset[int] = SERVER_ERRORS,
                  describe: Callable[[requests.Response], str] = lambda r: f"HTTP {r.status_code}",
                  **kwargs: Any) -> tuple[requests.Response | None, str]:
    """POST through a `retrying_session`: (the first answer whose status is not in `statuses`, "")
    or (None, what went wrong last: a transport failure's name or `describe(last answer)`), for
    the provider's own one-line error."""
    try:
        with retrying_session(retries, backoff_s, statuses) as session:
            response = session.post(url, **kwargs)
    except (requests.ConnectionError, requests.Timeout) as exc:
        return None, failure_name(exc)
    if response.status_code in statuses:
        return None, describe(response)
    return response, ""
