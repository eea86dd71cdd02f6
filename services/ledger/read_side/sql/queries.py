"""Queries over the read model: balances, national totals, SiSa and the journal, at any point in time.

Every figure is a SQL sum over ``ledger_journal``; ``as_of`` keeps rows booked on or before that
day, ``known_at`` rows recorded at or before that moment. Without filters: the same sums. The
answers get their shape in ``answers.py``, which the audit replay shares.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, bindparam, func, select
from sqlalchemy.sql.elements import ColumnElement

from contracts.canonical import format_utc
from services.common.consumer import applied_events, consumer_metadata, consumer_offsets
from services.common.errors import Unavailable
from services.ledger.read_side.answers import (
    SISA_INDICATOR_PREFIX,
    PointInTime,
    YearTotals,
    balance_figures,
    national_answer,
)
from services.ledger.read_side.sql.projected import ProjectedEvents
from services.ledger.read_side.sql.view import (
    PROJECTION_NAME,
    closings,
    journal,
    libraries,
    mergers,
    municipalities,
    view_metadata,
)


def _filters(at: PointInTime) -> list[ColumnElement[bool]]:
    """The journal rows a point in time keeps."""
    found: list[ColumnElement[bool]] = []
    if at.as_of is not None:
        found.append(journal.c.booked_on <= at.as_of)
    if at.known_at is not None:
        found.append(journal.c.recorded_at <= format_utc(at.known_at))
    return found


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
            .where(*where, *_filters(at))
            .group_by(*by)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).all())

    def _books(self, code: str | None, year: int, at: PointInTime) -> YearTotals:
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
        # By grant year: a posting books within its grant year, so for postings this is the booking
        # year; spending a merger passed on is booked on the effective date, perhaps a later year, and
        # still belongs to the line of the grant it was spent on (docs/decisions.md, mergers).
        spent = [journal.c.kind == "spent", journal.c.municipality_code == code]
        in_year = self._sums(at, *spent, journal.c.year == year, by=())
        cumulative = self._sums(at, *spent, journal.c.year <= year, by=())
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

    # -- what the dashboard offers --------------------------------------------------------------

    def years(self) -> list[int]:
        """The grant years with any journal row, oldest first."""
        query = select(journal.c.year).where(journal.c.year.is_not(None)).distinct().order_by(journal.c.year)
        with self.engine.connect() as connection:
            return [int(year) for year in connection.execute(query).scalars()]

    def predecessors_of(self, code: str) -> set[str]:
        """Every municipality that merged into ``code``, directly or through a chain of mergers: the
        successor answers for their grants, so it reads their books."""
        found: set[str] = set()
        todo = [code]
        with self.engine.connect() as connection:
            while todo:
                query = select(mergers.c.municipality_code).where(mergers.c.successor_code == todo.pop()).distinct()
                for predecessor in connection.execute(query).scalars():
                    if predecessor not in found and predecessor != code:
                        found.add(predecessor)
                        todo.append(predecessor)
        return found

    def municipality_name(self, code: str) -> str | None:
        """The name the grants topic gave the municipality, if any."""
        query = select(municipalities.c.name).where(municipalities.c.municipality_code == code)
        with self.engine.connect() as connection:
            name: str | None = connection.execute(query).scalar_one_or_none()
        return name

    def journal_rows(self, code: str, year: int | None, at: PointInTime) -> list[dict[str, Any]]:
        where = [journal.c.kind == "spent", journal.c.municipality_code == code, *_filters(at)]
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
