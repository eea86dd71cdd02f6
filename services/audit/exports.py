"""Exports for auditors and open data, from a replay of the topics (never from the live view).

- ``sisa_annex_csv``: the SiSa figures of every municipality for one accounts year, one row per line
  (per grant decision), as the ledger's SiSa view and its CSV have them.
- the grants in 360Giving JSON: ``services/audit/giving360.py``, with the helpers here: ``euros``
  (integer cents as exact decimal euros, never a float) and ``dumps_exact`` (written digit for digit).
- ``journal_lines``: every event of the three topics as JSON Lines, one canonical envelope each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from contracts.canonical import canonical_json
from services.audit.replay import Replay
from services.audit.sources import TopicReader
from services.common.csv_output import csv_text

SISA_COLUMNS = (
    "sisa_municipality_code",
    "municipality_code",
    "municipality_name",
    "year",
    "indicator_code",
    "besteding_jaar_t_eur",
    "cumulatieve_bestedingen_eur",
    "eindverantwoording",
    "besteding_jaar_t_cents",
    "cumulatieve_bestedingen_cents",
    "year_closed",
    "closed_on",
    "as_of",
    "known_at",
    # Added in issue 15: a row is one SiSa line (grant decision); ``year`` is the accounts year T.
    "grant_year",
    "indicator_cumulatief",
    "indicator_eindverantwoording",
    "declared_on",
    "declared_by",
    "deadline",
    "late",
)


def euros(cents: int) -> Decimal:
    """Integer cents as exact decimal euros: 123456 -> Decimal('1234.56')."""
    if type(cents) is not int:
        raise TypeError(f"cents must be an int, got {type(cents).__name__}")
    return Decimal(cents).scaleb(-2)


def sisa_annex_csv(replay: Replay, year: int, municipality_code: str | None = None) -> str:
    codes = sorted({code for code, y in replay.municipality_years() if y == year})
    if municipality_code is not None:
        codes = [municipality_code]
    rows = []
    for code in codes:
        s = replay.sisa(code, year)
        for line in s["lines"]:
            indicators = line["indicator_codes"] or {}
            rows.append(
                [
                    s["sisa_municipality_code"],
                    code,
                    replay.municipality_names.get(code, ""),
                    year,
                    indicators.get("besteding", ""),
                    euros(line["besteding_jaar_t_cents"]),
                    euros(line["cumulatieve_bestedingen_cents"]),
                    line["eindverantwoording"],
                    line["besteding_jaar_t_cents"],
                    line["cumulatieve_bestedingen_cents"],
                    s["year_closed"],
                    s["closed_on"] or "",
                    s["as_of"] or "",
                    s["known_at"] or "",
                    line["grant_year"],
                    indicators.get("cumulatief", ""),
                    indicators.get("eindverantwoording", ""),
                    line["declared_on"] or "",
                    line["declared_by"] or "",
                    s["deadline"],
                    line["late"],
                ]
            )
    return csv_text(SISA_COLUMNS, rows)


def dumps_exact(value: Any, indent: int = 0, level: int = 0) -> str:
    """JSON where a ``Decimal`` is written digit for digit (``json`` would need a float)."""
    pad = "\n" + " " * (indent * (level + 1)) if indent else ""
    end = "\n" + " " * (indent * level) if indent else ""
    sep = "," + pad if indent else ","
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("not a finite amount")
        return format(value, "f")
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{' ' if indent else ''}"
                 f"{dumps_exact(v, indent, level + 1)}" for k, v in value.items())
        return "{" + pad + sep.join(items) + end + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return "[" + pad + sep.join(dumps_exact(v, indent, level + 1) for v in value) + end + "]"
    if isinstance(value, float):
        raise TypeError("floats are not written: money is Decimal or integer cents")
    return json.dumps(value, ensure_ascii=False)


def journal_lines(reader: TopicReader, unreadable: list[str] | None = None) -> Iterator[bytes]:
    """Each distinct event of the topics (re-sent copies once), as canonical JSON, in reading order.

    A message that is no envelope is written as ``unreadable_message`` and its place added to ``unreadable``."""
    seen: set[tuple[str, str]] = set()
    for _tp, records in reader.batches():
        for record in records:
            try:
                envelope = json.loads(record.value)
                identity = (envelope["event_id"], envelope["hash"])
            except (TypeError, KeyError, UnicodeDecodeError, json.JSONDecodeError):
                if unreadable is not None:
                    unreadable.append(f"topic {record.topic} partition {record.partition} offset {record.offset}")
                yield canonical_json({"unreadable_message": repr(record.value)[:2000],
                                      "topic": record.topic, "partition": record.partition,
                                      "offset": record.offset})
                continue
            if identity in seen:
                continue
            seen.add(identity)
            yield canonical_json(envelope)
