"""Command line: print the subtotal of the items given as sku:unit_cents[:quantity]."""

from __future__ import annotations

import sys

from shop import __version__
from shop.pricing import parse_item, subtotal_cents


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        print(f"shop {__version__}")
        return 0
    try:
        items = [parse_item(arg) for arg in args]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(subtotal_cents(items))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
