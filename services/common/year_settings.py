"""Settings that hold a value per grant year: the SiSa indicator codes and the settlement rules.

Both are written ``<year>:<value>;<year>:<value>``; ``*`` stands for every year without its own entry.
They are settings, not code, because neither is fixed by the regulation: the IDO grant's SiSa codes
were not found (shared/domain.md), and the settlement rules beyond the advance are "the usual SPUK
pattern", which a year may leave (e.g. a move into the municipal fund). Errors name the setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from contracts.identifiers import FIRST_YEAR, LAST_YEAR, year_from_text

T = TypeVar("T")
ANY_YEAR = 0
"""The key of ``*``: the value of every year without its own entry."""

SISA_INDICATORS = "IDO_SISA_INDICATORS"
SETTLEMENT_RULES = "IDO_SETTLEMENT_RULES"
SISA_CODE = re.compile(r"^[A-Z][0-9]{1,2}[A-Z]?/[0-9]{2}$")
SISA_INDICATOR_NAMES = ("besteding", "cumulatief", "eindverantwoording")
CAPS = ("award", "none")
RECLAIMS = ("paid-minus-settled", "none")
DEFAULT_SETTLEMENT_RULES = "*:cap=award,reclaim=paid-minus-settled"
"""The usual SPUK pattern (shared/domain.md): settle at most the award, reclaim paid − settled."""


class YearSettingError(ValueError):
    """A per-year setting is malformed; ``config.load_settings`` turns it into a ``SettingError``."""


def per_year(raw: str, parse: Callable[[str], T]) -> dict[int, T]:
    """``<year>:<value>;...`` -> {year: value}; ``*`` -> key ``ANY_YEAR``."""
    found: dict[int, T] = {}
    for part in (p.strip() for p in raw.split(";")):
        if not part:
            continue
        year_text, colon, value = part.partition(":")
        year_text = year_text.strip()
        if not colon:
            raise YearSettingError(f"{part!r} must be <year>:<value>")
        if year_text == "*":
            year = ANY_YEAR
        elif (written := year_from_text(year_text)) is not None:
            year = written
        else:
            raise YearSettingError(f"{year_text!r} is no year between {FIRST_YEAR} and {LAST_YEAR} (or *)")
        if year in found:
            raise YearSettingError(f"the year {year_text} is given twice")
        try:
            found[year] = parse(value.strip())
        except YearSettingError as error:
            raise YearSettingError(f"year {year_text}: {error}") from None
    return found


def for_year(values: Mapping[int, T], year: int) -> T | None:
    """The value of ``year``, else that of ``*``, else None."""
    return values.get(year, values.get(ANY_YEAR))


def sisa_codes(value: str) -> tuple[str, ...]:
    """Three SiSa indicator codes, in the order besteding, cumulatief, eindverantwoording."""
    codes = tuple(code.strip() for code in value.split(","))
    if len(codes) != len(SISA_INDICATOR_NAMES):
        raise YearSettingError(
            f"needs {len(SISA_INDICATOR_NAMES)} codes ({', '.join(SISA_INDICATOR_NAMES)}), got {value!r}"
        )
    for code in codes:
        if not SISA_CODE.fullmatch(code):
            raise YearSettingError(f"{code!r} is no SiSa indicator code such as C8/01")
    return codes


def settlement_rule(value: str) -> dict[str, str]:
    """``cap=award|none,reclaim=paid-minus-settled|none`` -> {"cap": ..., "reclaim": ...}."""
    rule: dict[str, str] = {}
    for item in (i.strip() for i in value.split(",")):
        name, _eq, choice = item.partition("=")
        options = {"cap": CAPS, "reclaim": RECLAIMS}.get(name.strip())
        if options is None:
            raise YearSettingError(f"{item!r}: the rules are cap= and reclaim=")
        if choice.strip() not in options:
            raise YearSettingError(f"{name.strip()} must be one of {', '.join(options)}, got {choice.strip()!r}")
        rule[name.strip()] = choice.strip()
    if set(rule) != {"cap", "reclaim"}:
        raise YearSettingError(f"{value!r} must give both cap= and reclaim=")
    return rule
