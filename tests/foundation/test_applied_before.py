"""Which of a poll's event ids a consumer applied before (services/common/consumer.py): the duplicate check of
every poll, one query on each store (PostgreSQL: the ids as one array), exact for a whole poll of ids."""

from __future__ import annotations

import uuid

from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from services.common.consumer import OffsetStore


def test_a_polls_ids_applied_before_are_found_and_no_other(store_env: dict[str, str]) -> None:
    engine = create_sql_engine(load_settings(store_env).view_db_url)
    mine, other = OffsetStore(engine, "projector-a"), OffsetStore(engine, "projector-b")
    applied = [str(uuid.uuid4()) for _ in range(3000)]
    new = [str(uuid.uuid4()) for _ in range(2000)]
    with engine.begin() as connection:
        mine.remember(connection, "ido.expenditures.v1", 0, [(event_id, n) for n, event_id in enumerate(applied)])
        other.remember(connection, "ido.expenditures.v1", 0, [(new[0], 0)])  # another consumer's: not ours
    poll = [*new, *applied][::-1]  # a whole poll's worth, mixed
    with engine.connect() as connection:
        assert mine.applied_before(connection, poll) == set(applied)
        assert mine.applied_before(connection, new) == set()
        assert other.applied_before(connection, poll) == {new[0]}
    engine.dispose()
