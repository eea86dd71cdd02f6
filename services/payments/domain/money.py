"""Euros as text to integer cents, exactly, and back for messages.

Reading is ``contracts.amounts.parse_euros`` (plain and Dutch amounts, ambiguous ones refused), shared
with the ledger's import; what payments adds is its range: an award is at least one cent.
"""

from __future__ import annotations

from contracts.amounts import parse_euros
from contracts.values import MAX_CENTS


def euros_to_cents(text: str) -> int:
    """``"725000.00"`` or ``"€ 725.000,00"`` -> ``72500000``. Raises ValueError with the reason in words."""
    cents = parse_euros(text)
    if cents < 1:
        raise ValueError("must be at least 0.01")
    if cents > MAX_CENTS:
        raise ValueError(f"must be at most {format_euros(MAX_CENTS)}")
    return cents


def format_euros(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}€ {whole}.{part:02d}"
