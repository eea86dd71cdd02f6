"""BalancesProjection: the three topics -> the ledger's read model, applied by the ProjectionRunner.

What an event moves is decided by ``read_side/movements.py`` (``effects_of``), the one function
the audit replay uses too; this adapter only answers its questions from SQL and writes its rows:
every money movement becomes signed journal rows (see ``view.py``).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, insert, select, update

from services.common.bulk_insert import BulkInsert
from services.common.consumer import Rejected
from services.ledger.read_side.movements import (
    GRANT_KINDS,
    LOOKUPS,
    Effects,
    GrantOnDay,
    Merger,
    Original,
    Refused,
    SpentOnDay,
    effects_of,
    grant_on_days,
    spent_on_days,
)
from services.ledger.read_side.sql.view import (
    PROJECTION_NAME,
    after_close,
    bridge_accounts,
    bridge_deadlines,
    closings,
    journal,
    libraries,
    mergers,
    municipalities,
    sisa_declarations,
    view_metadata,
)


class SqlBook:
    """The ``AppliedSoFar`` of ``effects_of``, answered by the view's tables within the consumer's transaction."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def total(self, kind: str, **where: Any) -> int:
        assert tuple(sorted(where)) in LOOKUPS[kind], f"{kind} by {sorted(where)} is not in LOOKUPS"
        query = select(func.coalesce(func.sum(journal.c.amount_cents), 0)).where(journal.c.kind == kind)
        for column, value in where.items():
            query = query.where(journal.c[column] == value)
        return int(self.connection.execute(query).scalar_one())

    def original(self, event_id: str) -> Original | None:
        row = self.connection.execute(
            select(journal).where(journal.c.event_id == event_id, journal.c.line == 1)
        ).first()
        if row is None:
            return None
        return Original(
            int(row.amount_cents), row.municipality_code, row.counterparty_id, row.counterparty_name, row.reference
        )

    def is_closed(self, municipality_code: str, year: int) -> bool:
        return (
            self.connection.execute(
                select(closings.c.event_id).where(
                    closings.c.municipality_code == municipality_code, closings.c.year == year
                )
            ).first()
            is not None
        )

    def successor(self, municipality_code: str, year: int) -> Merger | None:
        return successor_in(self.connection, municipality_code, year)

    def grant_by_day(self, grant_id: str, municipality_code: str) -> list[GrantOnDay]:
        return grant_on_days(self._grant_rows(grant_id, municipality_code))

    def _grant_rows(self, grant_id: str, municipality_code: str) -> list[dict[str, Any]]:
        query = (
            select(journal.c.kind, journal.c.booked_on, func.sum(journal.c.amount_cents).label("amount_cents"))
            .where(
                journal.c.grant_id == grant_id,
                journal.c.kind.in_(GRANT_KINDS),
                journal.c.municipality_code == municipality_code,
            )
            .group_by(journal.c.kind, journal.c.booked_on)
        )
        return [dict(row._mapping) for row in self.connection.execute(query)]

    def spent_by_day(self, municipality_code: str, year: int, merger_recorded_at: str) -> list[SpentOnDay]:
        return spent_on_days(self._spent_rows(municipality_code, year, merger_recorded_at), merger_recorded_at)

    def _spent_rows(self, municipality_code: str, year: int, merger_recorded_at: str) -> list[dict[str, Any]]:
        spent_on = func.coalesce(journal.c.spent_on, journal.c.booked_on)
        # partial sums that ``spent_on_days`` can still split at the merger: rows recorded after it apart
        later = case((journal.c.recorded_at > merger_recorded_at, journal.c.recorded_at), else_="")
        query = (
            select(
                journal.c.category,
                journal.c.booked_on,
                spent_on.label("spent_on"),
                func.sum(journal.c.amount_cents).label("amount_cents"),
                func.max(journal.c.recorded_at).label("recorded_at"),
            )
            .where(journal.c.kind == "spent", journal.c.municipality_code == municipality_code, journal.c.year == year)
            .group_by(journal.c.category, journal.c.booked_on, spent_on, later)
        )
        return [dict(row._mapping) for row in self.connection.execute(query)]


def successor_in(connection: Connection, municipality_code: str, year: int) -> Merger | None:
    """The merger that passed the municipality's grant of ``year`` on, if any (the first recorded)."""
    row = connection.execute(
        select(mergers.c.successor_code, mergers.c.effective_on, mergers.c.recorded_at)
        .where(mergers.c.municipality_code == municipality_code, mergers.c.year == year)
        .order_by(mergers.c.recorded_at)
        .limit(1)
    ).first()
    return None if row is None else Merger(row.successor_code, row.effective_on, row.recorded_at)


_INSERT_JOURNAL = BulkInsert(journal)
_JOURNAL_TUPLE = itemgetter(*_INSERT_JOURNAL.columns)
_JOURNAL_KEY = itemgetter(_INSERT_JOURNAL.columns.index("event_id"), _INSERT_JOURNAL.columns.index("line"))
_EMPTY_JOURNAL_ROW: dict[str, Any] = {column.name: None for column in journal.columns}


class BatchBook(SqlBook):
    """A ``SqlBook`` that holds a batch's journal rows until ``flush``: one bulk insert per polled
    batch instead of one INSERT round trip per event (bench/README.md, row 3). Its answers count
    the rows it holds, so an event sees the events before it in the same batch.

    What a posting asks of every event (is its year closed, has its grant passed on by a merger, the
    line 1 a reversal undoes) is read for the whole batch at once (``prefetch``): three queries a
    batch instead of one per municipality, year and reversal."""

    def __init__(self, connection: Connection):
        super().__init__(connection)
        self.rows: list[dict[str, Any]] = []
        self.held_by_kind: dict[str, list[dict[str, Any]]] = {}
        self.originals: dict[str, Original | None] = {}
        self.closed: dict[tuple[str, int], bool] = {}
        self.successors: dict[tuple[str, int], Merger | None] = {}
        self.prefetched_codes: set[str] = set()

    def prefetch(self, envelopes: list[dict[str, Any]]) -> None:
        """Reads the closings and mergers of the municipalities the batch names, and the line 1 of the
        events it reverses; any other question is still asked of SQL when it comes."""
        codes: set[str] = set()
        reversed_ids: set[str] = set()
        for envelope in envelopes:
            payload = envelope["payload"]
            for field in ("municipality_code", "from_municipality_code"):
                code = payload.get(field)
                if type(code) is str:
                    codes.add(code)
            reversed_id = payload.get("reverses_event_id")
            if type(reversed_id) is str:
                reversed_ids.add(reversed_id)
        codes -= self.prefetched_codes
        if codes:
            for code, year in self.connection.execute(
                select(closings.c.municipality_code, closings.c.year).where(closings.c.municipality_code.in_(codes))
            ):
                self.closed[(code, year)] = True
            for row in self.connection.execute(
                select(mergers.c.municipality_code, mergers.c.year, mergers.c.successor_code, mergers.c.effective_on,
                       mergers.c.recorded_at)
                .where(mergers.c.municipality_code.in_(codes))
                .order_by(mergers.c.recorded_at)
            ):
                # the first recorded is the answer, as in ``successor_in``
                self.successors.setdefault(
                    (row.municipality_code, row.year), Merger(row.successor_code, row.effective_on, row.recorded_at)
                )
            self.prefetched_codes |= codes
        reversed_ids -= self.originals.keys()
        if reversed_ids:
            found = {
                row.event_id: Original(
                    int(row.amount_cents), row.municipality_code, row.counterparty_id, row.counterparty_name,
                    row.reference,
                )
                for row in self.connection.execute(
                    select(journal).where(journal.c.event_id.in_(reversed_ids), journal.c.line == 1)
                )
            }
            for event_id in reversed_ids:
                self.originals[event_id] = found.get(event_id)

    def total(self, kind: str, **where: Any) -> int:
        held = sum(
            row["amount_cents"]
            for row in self.held_by_kind.get(kind, ())
            if all(row[column] == value for column, value in where.items())
        )
        return super().total(kind, **where) + held

    def original(self, event_id: str) -> Original | None:
        if event_id in self.originals:
            return self.originals[event_id]
        return super().original(event_id)

    def is_closed(self, municipality_code: str, year: int) -> bool:
        key = (municipality_code, year)
        if key not in self.closed:
            self.closed[key] = municipality_code not in self.prefetched_codes and super().is_closed(
                municipality_code, year
            )
        return self.closed[key]

    def _grant_rows(self, grant_id: str, municipality_code: str) -> list[dict[str, Any]]:
        held = [
            row
            for kind in GRANT_KINDS
            for row in self.held_by_kind.get(kind, ())
            if row["grant_id"] == grant_id and row["municipality_code"] == municipality_code
        ]
        return super()._grant_rows(grant_id, municipality_code) + held

    def _spent_rows(self, municipality_code: str, year: int, merger_recorded_at: str) -> list[dict[str, Any]]:
        held = [
            row
            for row in self.held_by_kind.get("spent", ())
            if row["municipality_code"] == municipality_code and row["year"] == year
        ]
        return super()._spent_rows(municipality_code, year, merger_recorded_at) + held

    def successor(self, municipality_code: str, year: int) -> Merger | None:
        # Asked for every posting: answered from the batch's prefetch, mergers of the batch included.
        key = (municipality_code, year)
        if key not in self.successors:
            self.successors[key] = (
                None if municipality_code in self.prefetched_codes else super().successor(municipality_code, year)
            )
        return self.successors[key]

    def hold(self, envelope: dict[str, Any], effects: Effects) -> None:
        # Every row names every column, so one statement takes them all.
        event_id, event_type = envelope["event_id"], envelope["event_type"]
        recorded_at, stream_id = envelope["recorded_at"], envelope["stream_id"]
        for line, row in effects.rows:
            held = {
                **_EMPTY_JOURNAL_ROW,
                "event_id": event_id,
                "event_type": event_type,
                "recorded_at": recorded_at,
                "stream_id": stream_id,
                "line": line,
                **row,
            }
            self.rows.append(held)
            self.held_by_kind.setdefault(held["kind"], []).append(held)
            if line == 1:
                self.originals[event_id] = Original.of_row(row)
        if effects.closing is not None:
            self.closed[(effects.closing["municipality_code"], effects.closing["year"])] = True
        merger = effects.merger
        if merger is not None:
            key = (merger["municipality_code"], merger["year"])
            if self.successors.get(key) is None:  # the first merger recorded stays the answer, as in SQL
                self.successors[key] = Merger(merger["successor_code"], merger["effective_on"], merger["recorded_at"])

    def flush(self) -> None:
        # In key order: each insert then lands beside the one before in the primary key's B-tree
        # (random event ids otherwise jump across it), ~4 µs less an event on SQLite.
        rows = sorted(map(_JOURNAL_TUPLE, self.rows), key=_JOURNAL_KEY)
        _INSERT_JOURNAL(self.connection, rows)
        self.rows, self.held_by_kind = [], {}


class BalancesProjection:
    name = PROJECTION_NAME

    def create_tables(self, engine: Engine) -> None:
        view_metadata.create_all(engine)

    def drop_tables(self, engine: Engine) -> None:
        """Drops the view's own tables only (`ido recover view`): never an event store's, nor the recorded ids."""
        view_metadata.drop_all(engine)

    def apply(self, connection: Connection, topic: str, envelope: dict[str, Any]) -> None:
        self.apply_batch(connection, topic, [envelope])

    def apply_batch(self, connection: Connection, topic: str, envelopes: list[dict[str, Any]]) -> None:
        book = BatchBook(connection)
        book.prefetch(envelopes)
        for envelope in envelopes:
            try:
                effects = effects_of(topic, envelope, book)
            except Refused as refused:
                raise Rejected(str(refused)) from None
            book.hold(envelope, effects)
            self.write_names(connection, envelope, effects)
        book.flush()

    def write_names(self, connection: Connection, envelope: dict[str, Any], effects: Effects) -> None:
        """What an event writes besides journal rows: names, closings, mergers, SiSa declarations, the
        bridging frame's deadlines and the libraries' accounts (a few per year)."""
        if effects.municipality_name is not None:
            self._upsert_name(connection, municipalities, "municipality_code", *effects.municipality_name)
        if effects.library_name is not None:
            self._upsert_name(connection, libraries, "library_id", *effects.library_name)
        if effects.closing is not None:
            connection.execute(
                insert(closings).values(
                    event_id=envelope["event_id"], recorded_at=envelope["recorded_at"], **effects.closing
                )
            )
        if effects.merger is not None:
            connection.execute(insert(mergers).values(event_id=envelope["event_id"], **effects.merger))
        if effects.after_close is not None:
            connection.execute(
                insert(after_close).values(
                    event_id=envelope["event_id"],
                    event_type=envelope["event_type"],
                    recorded_at=envelope["recorded_at"],
                    **effects.after_close,
                )
            )
        if effects.declaration is not None:
            self._declare(connection, envelope, effects.declaration)
        for table, row in ((bridge_deadlines, effects.bridge_deadline), (bridge_accounts, effects.bridge_account)):
            if row is not None:
                connection.execute(
                    insert(table).values(event_id=envelope["event_id"], recorded_at=envelope["recorded_at"], **row)
                )

    def _declare(self, connection: Connection, envelope: dict[str, Any], declaration: dict[str, Any]) -> None:
        """The latest declaration of a line stands (the write side declares a line once)."""
        c = sisa_declarations.c
        connection.execute(
            delete(sisa_declarations).where(
                c.municipality_code == declaration["municipality_code"],
                c.accounts_year == declaration["accounts_year"],
                c.grant_year == declaration["grant_year"],
            )
        )
        connection.execute(
            insert(sisa_declarations).values(
                event_id=envelope["event_id"], recorded_at=envelope["recorded_at"], **declaration
            )
        )

    def _upsert_name(self, connection: Connection, table: Any, key: str, key_value: str, name: str) -> None:
        column = table.c[key]
        if connection.execute(select(column).where(column == key_value)).first() is None:
            connection.execute(insert(table).values({key: key_value, "name": name}))
        else:
            connection.execute(update(table).where(column == key_value).values(name=name))
