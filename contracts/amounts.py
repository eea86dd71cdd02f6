"""Amounts in euros as finance offices write them, to integer cents: one parser for every import.

The annex (payments) and the expenditure CSV (ledger) both read it from here: the services may not
import each other, and a second copy would drift. Integer arithmetic only, never float.

Accepted (``€`` in front optional, with or without a space):

- plain: ``725000``, ``725000.00``, ``725000.5``, ``0.01``;
- Dutch: ``725000,00``, ``725.000,00``, ``€ 725.000,00``, ``1.234,5``, ``1.234.567``;
- English grouping: ``725,000.00``, ``1,234,567``.

The decimal separator is the last separator when the value has both kinds; a separator that occurs
more than once separates thousands. Thousands groups are exactly three digits, after a first group
of one to three not starting with 0. At most two decimals (whole cents).

Refused as **ambiguous**: a value whose only separator is one ``.`` or ``,`` followed by exactly
three digits after a valid first group (``1.234``, ``1,234``, ``725.000``): it reads as thousands
in one convention and as decimals in the other, and guessing wrong is a factor of a thousand. The
writer adds the decimals (``1.234,00``, ``1,234.00``) or drops the separator (``1234``).
"""

from __future__ import annotations

import re

_EURO_SIGN = re.compile(r"^€\s*")
_SHAPE = re.compile(r"^[0-9]+(?:[.,][0-9]+)*$")
_SEPARATORS = re.compile(r"[.,]")
_MAX_LENGTH = 40
"""Longer than any amount up to MAX_CENTS written with every separator and the euro sign."""

EXAMPLES = "such as 725000.00, 725.000,00 or € 725.000,00"


class AmountError(ValueError):
    """An amount that is not read: ``reason`` says why in words, for the line's error."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_euros(text: str) -> int:
    """``"€ 725.000,00"`` -> ``72500000``. Non-negative; the caller checks its own range.

    Raises AmountError naming the reason (not the line: the caller knows the line and the column).
    """
    value = _EURO_SIGN.sub("", text.strip(), count=1)
    if len(value) > _MAX_LENGTH or not _SHAPE.fullmatch(value):
        raise AmountError(f"must be an amount in euros {EXAMPLES} (digits and separators only), got {text!r}")
    runs = _SEPARATORS.split(value)
    separators = _SEPARATORS.findall(value)
    if not separators:
        return int(value) * 100
    last = separators[-1]
    if len(set(separators)) == 2:
        if separators.count(last) > 1:
            raise AmountError(f"has more than one decimal separator {last!r}, got {text!r}")
        groups, decimals = runs[:-1], runs[-1]
    elif len(separators) > 1:  # one kind, several times: only thousands are separated more than once
        groups, decimals = runs, ""
    else:
        whole, decimals = runs
        if len(decimals) == 3 and _first_group(whole):
            other = "," if last == "." else "."
            raise AmountError(
                f"is ambiguous: the {last!r} in {text.strip()!r} may separate thousands or decimals; write "
                f"{whole}{decimals} for thousands, or two decimals (such as {whole}{last}{decimals}{other}00), "
                "as an amount has at most two decimals"
            )
        groups = [whole]
    if len(groups) > 1 and not (_first_group(groups[0]) and all(len(g) == 3 for g in groups[1:])):
        raise AmountError(
            "has misplaced thousands separators (groups of three digits after the first, such as 1.234.567,00), "
            f"got {text!r}"
        )
    if len(decimals) > 2:
        raise AmountError(f"must have at most two decimals (whole cents), got {text!r}")
    return int("".join(groups)) * 100 + int(decimals.ljust(2, "0"))


def _first_group(digits: str) -> bool:
    return 1 <= len(digits) <= 3 and not digits.startswith("0")
