"""What the ledger's write side asks the view before it books a posting: the award and the merger.

The view is eventually consistent with the grants topic: an award or a merger counts here once the
projector applied it. So a posting made right after its award may be refused (422, "retry once it
is projected"); a posting under a merged code may still be taken until the merger is projected, and
the projection then moves it to the successor like all the predecessor's spending.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Engine, select

from services.ledger.domain.grant_years import GrantYear
from services.ledger.read_side.sql.view import journal, mergers, view_metadata


class GrantYearsInView:
    def __init__(self, engine: Engine, open_before_award: Collection[int] = ()):
        self.engine = engine
        self.open_before_award = frozenset(open_before_award)
        view_metadata.create_all(engine)
        self._awarded_seen: set[tuple[str, int]] = set()

    def grant_year(self, municipality_code: str, year: int) -> GrantYear:
        key = (municipality_code, year)
        with self.engine.connect() as connection:
            if key not in self._awarded_seen:
                # Any award row of the code and year: its own GrantAwarded, or one a merger passed to it.
                # Once held, a year stays postable (an award is never withdrawn), so it is asked once.
                awarded = connection.execute(
                    select(journal.c.event_id)
                    .where(journal.c.kind == "awarded", journal.c.municipality_code == municipality_code,
                           journal.c.year == year, journal.c.amount_cents > 0)
                    .limit(1)
                ).first()
                if awarded is not None:
                    self._awarded_seen.add(key)
            merger = connection.execute(
                # A municipality merges once; its first merger's date is when its code stops.
                select(mergers.c.successor_code, mergers.c.effective_on)
                .where(mergers.c.municipality_code == municipality_code)
                .order_by(mergers.c.effective_on, mergers.c.recorded_at)
                .limit(1)
            ).first()
        return GrantYear(
            municipality_code=municipality_code,
            year=year,
            awarded=key in self._awarded_seen,
            open_before_award=year in self.open_before_award,
            merged_into=merger.successor_code if merger is not None else None,
            merged_on=merger.effective_on if merger is not None else None,
        )
