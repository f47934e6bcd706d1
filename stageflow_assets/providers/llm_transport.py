"""The anthropic SDK client and its errors, turned into stage errors a user can act on.

Transport retries are the SDK's own (`max_retries` on the client, `_base_client._should_retry`):
429, 408, 409, every 5xx including 529 overloaded, and connection errors/timeouts are retried with
exponential backoff (0.5 s × 2^n, capped at 8 s) and jitter, honouring `retry-after-ms` /
`retry-after`; 400/401/403/404/413 are never retried. What is left when retries run out is mapped
here: an error naming what to fix becomes BadInputError (no Dagster retry), the rest ProviderError.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDK takes ~2 s to import: only when Claude is really used
    import anthropic

from stageflow_assets.core.errors import BadInputError, ProviderError


def make_client(api_key: str, base_url: str | None, timeout_s: float, connect_timeout_s: float,
                max_retries: int) -> "anthropic.Anthropic":
    import anthropic

    if not api_key or not api_key.strip():
        raise BadInputError("ANTHROPIC_API_KEY is not set: export it (or configure ClaudeResource.api_key)")
    return anthropic.Anthropic(
        api_key=api_key.strip(),
        base_url=base_url or "https://api.anthropic.com",  # never ANTHROPIC_BASE_URL by accident
        timeout=anthropic.Timeout(timeout_s, connect=connect_timeout_s),
        max_retries=max_retries,
    )


def _error_type(exc: "anthropic.APIStatusError") -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    return str(error.get("type") or "unknown_error")


def _error_message(exc: "anthropic.APIStatusError") -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    return " ".join(str(error.get("message") or exc.message).split())[:300]


@contextlib.contextmanager
def api_errors(what: str, *, model: str, max_retries: int, timeout_s: float) -> Iterator[None]:
    """Wrap one SDK call: `what` says what was being done ("messages.create", "batch msgbatch_x")."""
    import anthropic

    try:
        yield
    except anthropic.APIStatusError as exc:
        status, etype, message = exc.status_code, _error_type(exc), _error_message(exc)
        details = {"status": status, "error_type": etype, "request_id": exc.request_id, "model": model}
        if status == 401:
            raise BadInputError(
                f"ANTHROPIC_API_KEY rejected (401 {etype}): set a valid Claude API key", **details
            ) from exc
        if status == 403:
            raise BadInputError(
                f"Claude API key lacks permission for {what} with model {model!r} (403): {message}",
                **details,
            ) from exc
        if status == 404:
            raise BadInputError(
                f"Claude {what}: not found (404): {message}; check ClaudeResource.model ({model!r}) "
                "or the batch id", **details,
            ) from exc
        if status == 402 or etype == "billing_error":
            raise BadInputError(f"Claude billing problem ({status}): {message}", **details) from exc
        if status in (400, 413, 422):
            raise BadInputError(f"Claude rejected {what} ({status} {etype}): {message}", **details) from exc
        if status == 429:
            raise ProviderError(
                f"Claude rate limit (429) on {what} after {max_retries} retries: {message}; "
                "retry later or lower concurrency", **details,
            ) from exc
        if status == 529:
            raise ProviderError(
                f"Claude overloaded (529) on {what} after {max_retries} retries; retry later", **details
            ) from exc
        raise ProviderError(
            f"Claude API error {status} ({etype}) on {what} after {max_retries} retries: {message}",
            **details,
        ) from exc
    except anthropic.APITimeoutError as exc:
        raise ProviderError(
            f"Claude {what} timed out after {timeout_s:g}s ({max_retries} retries); raise "
            "ClaudeResource.timeout_s or retry later", model=model,
        ) from exc
    except anthropic.APIConnectionError as exc:
        raise ProviderError(f"cannot reach the Claude API for {what}: {exc}", model=model) from exc
