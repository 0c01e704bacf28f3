"""A tiny shop: cart prices, discounts and taxes, in whole cents."""

__version__ = "0.1.0"
