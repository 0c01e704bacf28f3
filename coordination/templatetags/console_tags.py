"""Formatting for the console: figures that may be missing show "—", never a made-up zero."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django import template

from agents.models import Agent

register = template.Library()
DASH = "—"
ROLE_LABELS = dict(Agent.Role.choices)
ROLE_SHORT = {
    "product_manager": "PM",
    "architect": "ARC",
    "developer": "DEV",
    "tester": "QA",
    "devops": "OPS",
    "reviewer": "REV",
}


@register.filter
def duration(seconds) -> str:
    """12.3 → "12s", 754 → "12m 34s", 5400 → "1h 30m"."""
    if seconds is None or seconds == "":
        return DASH
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


@register.filter
def pct(value, digits: int = 0) -> str:
    """0.873 → "87%"; None → "—"."""
    if value is None or value == "":
        return DASH
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def money(value, currency: str = "USD") -> str:
    if value is None or value == "":
        return DASH
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return DASH
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency, "")
    text = f"{amount:,.4f}" if 0 < amount < Decimal("0.01") else f"{amount:,.2f}"
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


@register.filter
def number(value, digits: int = 0) -> str:
    if value is None or value == "":
        return DASH
    return f"{float(value):,.{int(digits)}f}"


@register.filter
def dash(value) -> str:
    return DASH if value is None or value == "" else value


@register.filter
def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, (role or "").replace("_", " "))


@register.filter
def role_short(role: str) -> str:
    return ROLE_SHORT.get(role, (role or "?")[:3].upper())


@register.filter
def get_item(mapping, key):
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None


@register.filter
def humanize_key(key: str) -> str:
    return (key or "").replace("_", " ")


@register.filter
def age(seconds) -> str:
    """Heartbeat age in seconds → "4s ago"."""
    if seconds is None:
        return DASH
    return f"{duration(seconds)} ago"


@register.filter
def source_label(url: str) -> str:
    """A workflow's source link as a reader knows it: "acme/shop#42" for a GitHub issue, else the host."""
    parts = urlsplit(url or "")
    segments = [s for s in parts.path.split("/") if s]
    if (
        parts.hostname == "github.com"
        and len(segments) == 4
        and segments[2] in ("issues", "pull")
        and segments[3].isdigit()
    ):
        return f"{segments[0]}/{segments[1]}#{segments[3]}"
    return parts.hostname or url
