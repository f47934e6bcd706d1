"""Typed values the Claude provider hands back: token usage with cost, batch requests and results."""

from __future__ import annotations

from typing import Any, Iterable, Literal, NamedTuple

from pydantic import BaseModel

from stageflow_assets.providers import llm_pricing

# Errored batch items worth sending again as they are; `invalid_output` is ours (the reply did
# not parse or validate). `invalid_request_error` & co. need a fix, not a retry.
RETRYABLE_BATCH_ERRORS = frozenset(
    {"api_error", "overloaded_error", "rate_limit_error", "timeout_error", "gateway_timeout_error",
     "invalid_output"}
)


class Usage(BaseModel):
    """Tokens and cost of one or more Claude requests; add them with `+` or `Usage.total`."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    requests: int = 0
    cost_usd: float | None = 0.0  # None: some request used a model missing from the price table

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            requests=self.requests + other.requests,
            cost_usd=None if cost is None else round(cost, 8),
        )

    @classmethod
    def total(cls, usages: Iterable[Usage]) -> Usage:
        out = cls()
        for usage in usages:
            out = out + usage
        return out

    @classmethod
    def from_sdk(cls, usage: Any, price: llm_pricing.Price | None, *, batch: bool = False) -> Usage:
        """From an `anthropic.types.Usage` (one request)."""
        write = usage.cache_creation_input_tokens or 0
        write_1h = getattr(usage.cache_creation, "ephemeral_1h_input_tokens", 0) or 0
        read = usage.cache_read_input_tokens or 0
        return cls(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=write,
            cache_read_input_tokens=read,
            requests=1,
            cost_usd=llm_pricing.cost_usd(
                price, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                cache_write_5m_tokens=write - write_1h, cache_write_1h_tokens=write_1h,
                cache_read_tokens=read, batch=batch,
            ),
        )


class BatchRequest(NamedTuple):
    """One item of a Message Batch; `custom_id` must be deterministic (e.g. a hash of the row)."""

    custom_id: str
    system: str
    prompt: str
    schema: type[BaseModel]


class BatchResult(BaseModel):
    """One batch item. `succeeded` has `parsed` and `usage`; `errored` has `error_type`/`error_message`
    (a reply that did not validate is `errored` with `error_type="invalid_output"`, usage kept)."""

    custom_id: str
    status: Literal["succeeded", "errored", "expired", "canceled"]
    parsed: Any = None
    usage: Usage | None = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def should_rebatch(self) -> bool:
        return self.status == "expired" or (
            self.status == "errored" and self.error_type in RETRYABLE_BATCH_ERRORS
        )


def ids_to_rebatch(results: dict[str, BatchResult] | Iterable[BatchResult],
                   include_canceled: bool = False) -> list[str]:
    """Sorted custom_ids worth a follow-up batch: expired and retryably errored (and canceled if asked)."""
    items = results.values() if isinstance(results, dict) else results
    return sorted(
        r.custom_id for r in items if r.should_rebatch or (include_canceled and r.status == "canceled")
    )
