"""The rounding rule of the bridging grants: exact total, then largest-remainder apportionment.

The rule, in full (also in services/bridge/README.md):

1. The rate is an exact decimal number of euro cents per inhabitant (default ``15``, i.e. € 0.15);
   it is never a float. Each library's weight is the sum of the inhabitants of its service area.
2. The batch total is ``rate × (sum of all libraries' inhabitants)``, rounded once to whole cents,
   half to even (banker's rounding). Computed with exact fractions, so nothing is lost on the way.
3. That total is apportioned to the libraries in proportion to their inhabitants with the
   largest-remainder (Hamilton) method: each library first gets the whole-cent floor of its exact
   share ``total × inhabitants / all inhabitants``; the cents still missing to reach the total are
   handed out one each to the libraries with the largest fractional remainders; equal remainders go
   in ascending order of library identifier, so the result never depends on input order.
4. Hence the parts always add up to the total exactly, every part is within one cent of its exact
   share, and with a whole-cent rate (such as 15) every part is exactly ``rate × inhabitants``.
5. The batch is refused as a whole when the total exceeds the frame; nothing is scaled down.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from services.bridge.domain.errors import BridgeInvalidInput

DEFAULT_RATE = "15"
MAX_RATE_DECIMALS = 6


def parse_rate(text: str | Decimal, *, field: str = "rate_cents_per_inhabitant") -> Decimal:
    """A rate in cents per inhabitant: a positive, finite decimal with at most 6 decimals."""
    try:
        rate = text if isinstance(text, Decimal) else Decimal(str(text).strip())
    except InvalidOperation:
        raise BridgeInvalidInput(f"not a decimal number: {text!r}", field=field) from None
    if not rate.is_finite() or rate <= 0:
        raise BridgeInvalidInput("must be a positive number of cents", field=field)
    exponent = rate.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > MAX_RATE_DECIMALS:
        raise BridgeInvalidInput(f"at most {MAX_RATE_DECIMALS} decimals", field=field)
    return rate


def format_rate(rate: Decimal) -> str:
    """One spelling per value: ``15``, ``15.5``; never exponent notation."""
    text = format(rate, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def total_cents(rate: Decimal, inhabitants: int) -> int:
    """``rate × inhabitants`` rounded to whole cents, half to even."""
    if inhabitants < 0:
        raise ValueError("inhabitants must not be negative")
    return round(Fraction(rate) * inhabitants)


def apportion(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Splits ``total`` cents over the keys in proportion to ``weights`` (largest remainder).

    The parts sum to ``total`` exactly. With all weights zero every part is zero, and the total
    must then be zero too.
    """
    if total < 0:
        raise ValueError("total must not be negative")
    if any(weight < 0 for weight in weights.values()):
        raise ValueError("weights must not be negative")
    weight_sum = sum(weights.values())
    if weight_sum == 0:
        if total != 0:
            raise ValueError("cannot apportion a non-zero total over zero weights")
        return dict.fromkeys(weights, 0)
    parts: dict[str, int] = {}
    remainders: list[tuple[int, str]] = []
    for key, weight in weights.items():
        share, remainder = divmod(total * weight, weight_sum)  # exact: share + remainder / weight_sum
        parts[key] = share
        remainders.append((remainder, key))
    missing = total - sum(parts.values())
    # Largest remainder first; ties in ascending key order (negate the remainder to sort one way).
    for _remainder, key in sorted(remainders, key=lambda item: (-item[0], item[1]))[:missing]:
        parts[key] += 1
    return parts


def compute_grants(rate: Decimal, inhabitants_by_library: Mapping[str, int]) -> tuple[int, dict[str, int]]:
    """(batch total, grant per library) by the rule in this module's docstring."""
    total = total_cents(rate, sum(inhabitants_by_library.values()))
    return total, apportion(total, inhabitants_by_library)
