"""What the ledger's write side asks the view before it books a posting: the award and the merger.

The view is eventually consistent with the grants topic: an award or a merger counts here once the
projector applied it. So a posting made right after its award may be refused (422, "retry once it
is projected"); a posting under a merged code may still be taken until the merger is projected (and
read here), and the projection then moves it to the successor like all the predecessor's spending.

Neither is asked on every posting (issue 17: a view connection and the merger query were ~1.5 ms of
each): an award, once held, and a merger, once made, are final, so each is kept once seen. The
mergers not known yet are read again, all at once, at most every ``IDO_MERGERS_REREAD_MS``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from datetime import date

from sqlalchemy import Connection, Engine, select

from services.ledger.domain.grant_years import GrantYear
from services.ledger.read_side.sql.view import journal, mergers, view_metadata


class GrantYearsInView:
    def __init__(self, engine: Engine, open_before_award: Collection[int] = (), mergers_reread_ms: int = 0):
        self.engine = engine
        self.open_before_award = frozenset(open_before_award)
        self.mergers_reread_s = mergers_reread_ms / 1000
        view_metadata.create_all(engine)
        self._awarded_seen: set[tuple[str, int]] = set()
        self._mergers: dict[str, tuple[str, date]] = {}
        """Code -> (successor, effective date) of every merger read so far."""
        self._mergers_read_at_s: float | None = None
        """When the last read of the mergers started (monotonic)."""
        self._reading = threading.Lock()

    def grant_year(self, municipality_code: str, year: int) -> GrantYear:
        key = (municipality_code, year)
        # A year opened before its award needs no award to post into: no need to ask for one.
        if key not in self._awarded_seen and year not in self.open_before_award:
            with self.engine.connect() as connection:
                if _awarded(connection, municipality_code, year):
                    self._awarded_seen.add(key)
        merger = self._merger(municipality_code)
        return GrantYear(
            municipality_code=municipality_code,
            year=year,
            awarded=key in self._awarded_seen,
            open_before_award=year in self.open_before_award,
            merged_into=merger[0] if merger is not None else None,
            merged_on=merger[1] if merger is not None else None,
        )

    def _merger(self, municipality_code: str) -> tuple[str, date] | None:
        known = self._mergers.get(municipality_code)
        if known is not None:
            return known
        with self._reading:  # one thread reads; the others of the moment use what it read
            read_at_s = self._mergers_read_at_s
            if read_at_s is None or time.monotonic() - read_at_s >= self.mergers_reread_s:
                started_s = time.monotonic()
                with self.engine.connect() as connection:
                    # a merger once read is final: kept even while a re-projection rebuilds the table
                    self._mergers = {**_first_mergers(connection), **self._mergers}
                self._mergers_read_at_s = started_s
        return self._mergers.get(municipality_code)


def _awarded(connection: Connection, municipality_code: str, year: int) -> bool:
    """Any award row of the code and year: its own GrantAwarded, or one a merger passed to it."""
    return connection.execute(
        select(journal.c.event_id)
        .where(journal.c.kind == "awarded", journal.c.municipality_code == municipality_code,
               journal.c.year == year, journal.c.amount_cents > 0)
        .limit(1)
    ).first() is not None


def _first_mergers(connection: Connection) -> dict[str, tuple[str, date]]:
    """Code -> its first merger: a municipality merges once, its first merger's date is when its code stops.
    The table holds a row per merger and grant year passed on: a few hundred rows in all."""
    first: dict[str, tuple[str, date]] = {}
    rows = connection.execute(
        select(mergers.c.municipality_code, mergers.c.successor_code, mergers.c.effective_on)
        .order_by(mergers.c.effective_on, mergers.c.recorded_at)
    )
    for row in rows:
        first.setdefault(row.municipality_code, (row.successor_code, row.effective_on))
    return first
