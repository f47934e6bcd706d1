"""Claude prices in USD per million tokens. Prices change: edit this table, or set
`ClaudeResource.input_usd_per_mtok` / `output_usd_per_mtok` to override it for the configured model.

Sources: the Anthropic pricing page (Opus 4.5+ $5/$25, Sonnet 4.x $3/$15, Haiku 4.5 $1/$5) and the
batch-processing docs (every batch token at 50 %). Cache writes cost 1.25× input (5-minute TTL) or
2× (1-hour TTL); cache reads 0.1× input.
"""

from __future__ import annotations

from typing import NamedTuple


class Price(NamedTuple):
    input_usd_per_mtok: float
    output_usd_per_mtok: float


PRICES: dict[str, Price] = {
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-7": Price(5.0, 25.0),
    "claude-opus-4-8": Price(5.0, 25.0),
}

BATCH_RATE = 0.5
CACHE_WRITE_5M_RATE = 1.25
CACHE_WRITE_1H_RATE = 2.0
CACHE_READ_RATE = 0.1


def price_for(model: str, override: Price | None = None) -> Price | None:
    """The price of `model`; dated ids (`claude-haiku-4-5-20251001`) fall back to their alias."""
    if override is not None:
        return override
    if model in PRICES:
        return PRICES[model]
    for alias, price in PRICES.items():
        if model.startswith(alias + "-"):
            return price
    return None


def cost_usd(
    price: Price | None,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_write_5m_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    cache_read_tokens: int = 0,
    batch: bool = False,
) -> float | None:
    """None when the model has no price: an unknown cost is not a zero cost."""
    if price is None:
        return None
    inp, out = price.input_usd_per_mtok, price.output_usd_per_mtok
    total = (
        input_tokens * inp
        + output_tokens * out
        + cache_write_5m_tokens * inp * CACHE_WRITE_5M_RATE
        + cache_write_1h_tokens * inp * CACHE_WRITE_1H_RATE
        + cache_read_tokens * inp * CACHE_READ_RATE
    ) / 1_000_000
    return round(total * (BATCH_RATE if batch else 1.0), 8)
