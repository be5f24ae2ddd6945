"""What model calls cost: a price table per model, and the cost of one call.

Prices are US dollars per million tokens, kept as integer micro-dollars per
million (`ModelPrice`: $2.50 is 2_500_000) so that every cost is an exact
integer of micro-dollars: for one call,

    (uncached input * input + cached input * cached + output * output) / 1e6

rounded up to the next micro-dollar, so many small calls never add up to
less than they cost. Input tokens include the cached ones (both providers'
counts are normalized so by runtime/openai_chat.py and anthropic_chat.py);
output tokens include the reasoning ones, which are billed as output.

The shipped table (DEFAULT_PRICES) holds the list prices of common OpenAI
and Anthropic models; the `prices` setting overrides or adds models
(`MODEL=IN/OUT[/CACHED],...`, dollars per million, cached defaulting to the
input price). A model is found by its exact name, else by the longest name
in the table it starts with (`gpt-4o-2024-08-06` is priced as `gpt-4o`).
Local models (the `local` and `ollama` providers) cost nothing, and so does
a model the table does not know: its tokens are still recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from stigmer.api.v1 import execution_pb2

MICROS_PER_DOLLAR = 1_000_000
TOKENS_PER_PRICE = 1_000_000
FREE_PROVIDERS = frozenset({"local", "ollama"})


@dataclass(frozen=True)
class Price:
    """Micro-dollars per million tokens."""

    input_micros: int
    output_micros: int
    cached_micros: int

    def as_proto(self) -> execution_pb2.ModelPrice:
        return execution_pb2.ModelPrice(
            input_micros=self.input_micros,
            output_micros=self.output_micros,
            cached_micros=self.cached_micros,
        )


FREE = Price(0, 0, 0)


def _dollars(input_usd: str, output_usd: str, cached_usd: str) -> Price:
    return Price(_micros(input_usd), _micros(output_usd), _micros(cached_usd))


def _micros(dollars: str) -> int:
    return int(Decimal(dollars) * MICROS_PER_DOLLAR)


# List prices in USD per million tokens: input, output, cached input.
DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-5": _dollars("1.25", "10", "0.125"),
    "gpt-5-mini": _dollars("0.25", "2", "0.025"),
    "gpt-5-nano": _dollars("0.05", "0.40", "0.005"),
    "gpt-4.1": _dollars("2", "8", "0.50"),
    "gpt-4.1-mini": _dollars("0.40", "1.60", "0.10"),
    "gpt-4.1-nano": _dollars("0.10", "0.40", "0.025"),
    "gpt-4o": _dollars("2.50", "10", "1.25"),
    "gpt-4o-mini": _dollars("0.15", "0.60", "0.075"),
    "o3": _dollars("2", "8", "0.50"),
    "o4-mini": _dollars("1.10", "4.40", "0.275"),
    "claude-opus-4-5": _dollars("5", "25", "0.50"),
    "claude-opus-4-1": _dollars("15", "75", "1.50"),
    "claude-opus-4": _dollars("15", "75", "1.50"),
    "claude-sonnet-4-5": _dollars("3", "15", "0.30"),
    "claude-sonnet-4": _dollars("3", "15", "0.30"),
    "claude-3-7-sonnet": _dollars("3", "15", "0.30"),
    "claude-haiku-4-5": _dollars("1", "5", "0.10"),
    "claude-3-5-haiku": _dollars("0.80", "4", "0.08"),
}


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price]

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Price]) -> PriceTable:
        return cls({**DEFAULT_PRICES, **overrides})

    def price_of(self, provider: str, model: str) -> Price:
        if provider.lower() in FREE_PROVIDERS:
            return FREE
        found = self.prices.get(model)
        if found is not None:
            return found
        prefixes = [name for name in self.prices if model.startswith(name)]
        return self.prices[max(prefixes, key=len)] if prefixes else FREE


def cost_micros(price: Price, usage: execution_pb2.Usage) -> int:
    """The cost of one call in micro-dollars, rounded up."""
    cached = min(usage.cached_tokens, usage.input_tokens)
    numerator = (
        (usage.input_tokens - cached) * price.input_micros
        + cached * price.cached_micros
        + usage.output_tokens * price.output_micros
    )
    return -(-numerator // TOKENS_PER_PRICE)


def format_dollars(micros: int) -> str:
    """Micro-dollars as exact dollars: 1234 is $0.001234."""
    return f"${micros // 1_000_000}.{micros % 1_000_000:06d}"


def parse_prices(text: str) -> dict[str, Price]:
    """`MODEL=IN/OUT[/CACHED],...` (dollars per million tokens) as prices.

    Raises:
        ValueError: an entry is not of that form (the message names it).
    """
    prices: dict[str, Price] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        model, equals, figures = entry.partition("=")
        parts = figures.split("/")
        if not equals or not model.strip() or len(parts) not in (2, 3):
            raise ValueError(f"{entry!r} is not MODEL=IN/OUT or MODEL=IN/OUT/CACHED")
        try:
            amounts = [Decimal(part.strip()) for part in parts]
        except InvalidOperation:
            raise ValueError(f"{entry!r}: prices must be numbers of dollars") from None
        if any(not amount.is_finite() or amount < 0 for amount in amounts):
            raise ValueError(f"{entry!r}: prices must be 0 or more")
        if len(amounts) == 2:
            amounts.append(amounts[0])
        micros = [int(amount * MICROS_PER_DOLLAR) for amount in amounts]
        prices[model.strip()] = Price(micros[0], micros[1], micros[2])
    return prices


def is_price_list(text: str) -> bool:
    try:
        parse_prices(text)
    except ValueError:
        return False
    return True
