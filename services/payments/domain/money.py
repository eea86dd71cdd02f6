"""Euros as text to integer cents, exactly (Decimal, never float), and back for messages."""

from __future__ import annotations

import re
from decimal import Decimal

from contracts.values import MAX_CENTS

_EUROS = re.compile(r"^\d{1,13}(?:\.\d+)?$")


def euros_to_cents(text: str) -> int:
    """``"725000.00"`` -> ``72500000``. Raises ValueError with the reason in words."""
    value = text.strip()
    if not _EUROS.match(value):
        raise ValueError(f"must be an amount in euros such as 725000.00 (digits, a point, two decimals), got {text!r}")
    _, _, decimals = value.partition(".")
    if len(decimals) > 2:
        raise ValueError(f"must have at most two decimals (whole cents), got {text!r}")
    cents_value = Decimal(value).scaleb(2)
    cents = int(cents_value)
    if Decimal(cents) != cents_value:  # cannot happen after the checks above; kept as a guard
        raise ValueError(f"is not a whole number of cents: {text!r}")
    if cents < 1:
        raise ValueError("must be at least 0.01")
    if cents > MAX_CENTS:
        raise ValueError(f"must be at most {format_euros(MAX_CENTS)}")
    return cents


def format_euros(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}€ {whole}.{part:02d}"
