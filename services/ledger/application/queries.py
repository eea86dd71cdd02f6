"""Queries over the read model: balances, national totals, SiSa and the journal, at any point in time.

Every figure is a SQL sum over ``ledger_journal``; ``as_of`` keeps rows booked on or before that
day, ``known_at`` rows recorded at or before that moment. Without filters: the same sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, func, select
from sqlalchemy.sql.elements import ColumnElement

from contracts.canonical import format_utc
from contracts.events.expenditures import CATEGORIES
from services.common.consumer import applied_events, consumer_metadata, consumer_offsets
from services.common.errors import Unavailable
from services.ledger.application.movements import library_bridge_rows
from services.ledger.application.projected import ProjectedEvents
from services.ledger.application.view import (
    PROJECTION_NAME,
    closings,
    journal,
    libraries,
    municipalities,
    view_metadata,
)

SISA_INDICATOR_PREFIX = None
"""The IDO grant's own SiSa code was not found (see shared/domain.md): configure, do not invent."""


@dataclass(frozen=True)
class PointInTime:
    as_of: date | None = None
    known_at: datetime | None = None

    def filters(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.as_of is not None:
            found.append(journal.c.booked_on <= self.as_of)
        if self.known_at is not None:
            found.append(journal.c.recorded_at <= format_utc(self.known_at))
        return found

    def describe(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "known_at": format_utc(self.known_at) if self.known_at else None,
        }


def balance_figures(municipality: dict[str, int], categories: dict[str, int]) -> dict[str, Any]:
    """The money of a balance from its sums by kind and spent by category: one shape for the live
    queries and the audit replay."""
    awarded = municipality.get("awarded", 0)
    paid = municipality.get("advance_paid", 0)
    spent = sum(categories.values())
    return {
        "awarded_cents": awarded,
        "advance_paid_cents": paid,
        "spent_by_category": {c: categories.get(c, 0) for c in CATEGORIES},
        "spent_cents": spent,
        "unspent_cents": paid - spent,
        "spent_beyond_award_cents": max(spent - awarded, 0),
        "settled_cents": municipality.get("settled", 0),
        "reclaim_issued_cents": municipality.get("reclaim_issued", 0),
        "reclaim_received_cents": municipality.get("reclaim_received", 0),
    }


Books = dict[str, tuple[dict[str, int], dict[str, int]]]
"""municipality code -> (sums by kind, spent by category) of one year."""


def national_answer(
    year: int,
    books: Books,
    municipality_names: dict[str, str],
    frame_cents: int,
    per_library: dict[str, dict[str, int]],
    library_names: dict[str, str],
    bridge_frame_cents: int,
    funding: list[tuple[str | None, int]],
) -> dict[str, Any]:
    """The national view of a year, from its sums: one shape for the live queries and the audit replay,
    so the two answers can be compared field by field. ``funding``: (library id, cents) pairs."""
    rows = []
    totals_kinds: dict[str, int] = {}
    totals_categories: dict[str, int] = {}
    for code, (kinds, categories) in sorted(books.items()):
        rows.append(
            {"municipality_code": code, "name": municipality_names.get(code), **balance_figures(kinds, categories)}
        )
        for k, v in kinds.items():
            totals_kinds[k] = totals_kinds.get(k, 0) + v
        for k, v in categories.items():
            totals_categories[k] = totals_categories.get(k, 0) + v
    totals = balance_figures(totals_kinds, totals_categories)
    bridge_rows, bridge_totals = library_bridge_rows(per_library, library_names)
    received = [
        {
            "library_id": library_id,
            "name": library_names.get(library_id) if library_id is not None else None,
            "received_cents": cents,
        }
        for library_id, cents in sorted(funding, key=lambda item: item[0] or "")
    ]
    return {
        "year": year,
        "frame_cents": frame_cents,
        "awarded_within_frame": totals["awarded_cents"] <= frame_cents,
        "frame_unawarded_cents": frame_cents - totals["awarded_cents"],
        "municipalities": rows,
        "totals": totals,
        "bridge": {
            "frame_cents": bridge_frame_cents,
            "frame_ungranted_cents": bridge_frame_cents - bridge_totals["granted_cents"],
            "libraries": bridge_rows,
            "totals": bridge_totals,
        },
        "library_funding_received": received,
    }


class LedgerQueries:
    def __init__(self, engine: Engine, projection_name: str = PROJECTION_NAME):
        self.engine = engine
        self.projection_name = projection_name
        view_metadata.create_all(engine)
        consumer_metadata.create_all(engine)
        self._applied = select(applied_events.c.event_id).where(
            applied_events.c.consumer == projection_name, applied_events.c.event_id == bindparam("event_id")
        )
        self.projected = ProjectedEvents(engine, projection_name)

    # -- read-your-writes ----------------------------------------------------------------------

    def wait_for_event(self, event_id: str, timeout_ms: int) -> None:
        """Returns once the event is projected; Unavailable (503, Retry-After) after ``timeout_ms``."""
        with self.engine.connect() as connection:
            if connection.execute(self._applied, {"event_id": event_id}).first() is not None:
                return
        if timeout_ms > 0 and self.projected.wait(event_id, timeout_ms):
            return
        raise Unavailable(
            f"event {event_id} is not projected yet (waited {timeout_ms} ms); retry shortly", retry_after_s=1
        )

    def offsets(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(consumer_offsets.c.topic, consumer_offsets.c.partition, consumer_offsets.c.next_offset)
                .where(consumer_offsets.c.consumer == self.projection_name)
                .order_by(consumer_offsets.c.topic, consumer_offsets.c.partition)
            ).all()
        return [{"topic": r.topic, "partition": r.partition, "next_offset": r.next_offset} for r in rows]

    # -- sums ----------------------------------------------------------------------------------

    def _sums(self, at: PointInTime, *where: ColumnElement[bool], by: tuple[Any, ...]) -> list[Any]:
        query = (
            select(*by, func.coalesce(func.sum(journal.c.amount_cents), 0).label("cents"))
            .where(*where, *at.filters())
            .group_by(*by)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).all())

    def _books(self, code: str | None, year: int, at: PointInTime) -> Books:
        where = [journal.c.year == year, journal.c.municipality_code.is_not(None)]
        if code is not None:
            where.append(journal.c.municipality_code == code)
        books: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        for row in self._sums(at, *where, by=(journal.c.municipality_code, journal.c.kind, journal.c.category)):
            kinds, categories = books.setdefault(row.municipality_code, ({}, {}))
            if row.kind == "spent":
                categories[row.category] = categories.get(row.category, 0) + int(row.cents)
            else:
                kinds[row.kind] = kinds.get(row.kind, 0) + int(row.cents)
        return books

    def balances(self, code: str, year: int, at: PointInTime) -> dict[str, Any]:
        kinds, categories = self._books(code, year, at).get(code, ({}, {}))
        return {
            "municipality_code": code,
            "year": year,
            **balance_figures(kinds, categories),
            **at.describe(),
            "offsets": self.offsets(),
        }

    def national(self, year: int, at: PointInTime) -> dict[str, Any]:
        offsets = self.offsets()
        with self.engine.connect() as connection:
            names = dict(connection.execute(select(municipalities.c.municipality_code, municipalities.c.name)).all())
            library_names = dict(connection.execute(select(libraries.c.library_id, libraries.c.name)).all())
        frame = sum(
            int(r.cents) for r in self._sums(at, journal.c.kind == "grant_frame", journal.c.year == year, by=())
        )
        bridge_frame = sum(int(r.cents) for r in self._sums(at, journal.c.kind == "bridge_frame", by=()))
        per_library: dict[str, dict[str, int]] = {}
        for row in self._sums(
            at,
            journal.c.library_id.is_not(None),
            journal.c.kind.like("bridge_%"),
            by=(journal.c.library_id, journal.c.kind),
        ):
            per_library.setdefault(row.library_id, {})[row.kind] = int(row.cents)
        funding = self._sums(
            at,
            journal.c.kind == "spent",
            journal.c.category == "library_funding",
            journal.c.year == year,
            by=(journal.c.counterparty_id,),
        )
        answer = national_answer(
            year, self._books(None, year, at), names, frame, per_library, library_names, bridge_frame,
            [(r.counterparty_id, int(r.cents)) for r in funding],
        )
        return {**answer, **at.describe(), "offsets": offsets}

    def sisa(self, code: str, year: int, at: PointInTime) -> dict[str, Any]:
        spent = [journal.c.kind == "spent", journal.c.municipality_code == code]
        in_year = self._sums(
            at, *spent, journal.c.booked_on >= date(year, 1, 1), journal.c.booked_on <= date(year, 12, 31), by=()
        )
        cumulative = self._sums(at, *spent, journal.c.booked_on <= date(year, 12, 31), by=())
        closing_where = [closings.c.municipality_code == code, closings.c.year == year]
        if at.as_of is not None:
            closing_where.append(closings.c.closed_on <= at.as_of)
        if at.known_at is not None:
            closing_where.append(closings.c.recorded_at <= format_utc(at.known_at))
        with self.engine.connect() as connection:
            closing = connection.execute(select(closings).where(and_(*closing_where))).first()
        final = bool(closing is not None and closing.final_account)
        return {
            "municipality_code": code,
            "sisa_municipality_code": "06" + code[2:],
            "indicator_code": SISA_INDICATOR_PREFIX,
            "year": year,
            "besteding_jaar_t_cents": sum(int(r.cents) for r in in_year),
            "cumulatieve_bestedingen_cents": sum(int(r.cents) for r in cumulative),
            "eindverantwoording": "Ja" if final else "Nee",
            "final_account": final,
            "year_closed": closing is not None,
            "closed_on": closing.closed_on.isoformat() if closing is not None else None,
            **at.describe(),
            "offsets": self.offsets(),
        }

    def journal_rows(self, code: str, year: int | None, at: PointInTime) -> list[dict[str, Any]]:
        where = [journal.c.kind == "spent", journal.c.municipality_code == code, *at.filters()]
        if year is not None:
            where.append(journal.c.year == year)
        query = select(journal).where(*where).order_by(journal.c.booked_on, journal.c.recorded_at, journal.c.event_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                "event_id": r.event_id,
                "event_type": r.event_type,
                "expenditure_id": r.expenditure_id,
                "grant_year": r.year,
                "category": r.category,
                "amount_cents": int(r.amount_cents),
                "booked_on": r.booked_on.isoformat(),
                "recorded_at": r.recorded_at,
                "counterparty_id": r.counterparty_id,
                "counterparty_name": r.counterparty_name,
                "reference": r.reference,
                "description": r.description,
                "reverses_event_id": r.reverses_event_id,
            }
            for r in rows
        ]
