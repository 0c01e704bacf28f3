"""Prices of a shopping cart, in whole cents so sums stay exact."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    sku: str
    unit_cents: int
    quantity: int = 1

    def __post_init__(self) -> None:
        if self.unit_cents < 0:
            raise ValueError("unit price cannot be negative")
        if self.quantity < 1:
            raise ValueError("quantity must be at least 1")

    @property
    def total_cents(self) -> int:
        return self.unit_cents * self.quantity


def subtotal_cents(items: Iterable[Item]) -> int:
    return sum(item.total_cents for item in items)


def apply_percent_off(cents: int, percent: int) -> int:
    """Take `percent` off `cents`, rounding the discount down (the shop never over-discounts)."""
    if not 0 <= percent <= 100:
        raise ValueError("percent must be between 0 and 100")
    return cents - cents * percent // 100


def parse_item(text: str) -> Item:
    """“sku:unit_cents[:quantity]”, as typed on the command line."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"expected sku:unit_cents[:quantity], got {text!r}")
    quantity = int(parts[2]) if len(parts) == 3 else 1
    return Item(sku=parts[0], unit_cents=int(parts[1]), quantity=quantity)
