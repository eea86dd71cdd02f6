"""`ido recover view`: the ledger's view dropped and projected again from the topics (issue 19, Must show 3).

The real command against the real broker, on SQLite and PostgreSQL (where the view shares the event
stores' database: the command must leave every table of theirs as it was).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError

from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings
from services.common.definition import SERVICE_NAMES
from services.ledger.entrypoints.projector import build_runner
from tests.audit.support import record_history
from tests.recovery.test_recover_store import ido, stored
from tests.support.waiting import wait_until

JOURNAL = text(
    "SELECT event_id, line, kind, municipality_code, year, amount_cents, reverses_event_id "
    "FROM ledger_journal ORDER BY event_id, line"
)


def journal(settings: Settings) -> list[tuple[Any, ...]]:
    engine = create_sql_engine(settings.view_db_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(JOURNAL)]
    finally:
        engine.dispose()


def test_the_view_is_projected_again_and_the_stores_are_left_alone(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    services = record_history(live)
    services.publish()
    spent = services.expenditures
    services.close()
    before = {service: stored(live, service) for service in SERVICE_NAMES}

    assert ido(monkeypatch, env, "recover", "view") == 0, capsys.readouterr()
    assert "view rebuilt: " in capsys.readouterr().out
    rebuilt = journal(live)
    spending = {(row[0], row[3], row[5]) for row in rebuilt if row[2] == "spent"}
    assert {(e["event_id"], e["municipality_code"]) for e in spent} < {(row[0], row[1]) for row in spending}
    assert sorted(row[2] for row in spending) == [-500_00, 500_00, 7_000_00, 12_345_67]  # the reversal too

    # a damaged view: rows lost and an amount changed
    engine = create_sql_engine(live.view_db_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM ledger_journal WHERE kind = 'advance'"))
        connection.execute(text("UPDATE ledger_journal SET amount_cents = 1 WHERE kind = 'spent'"))
    engine.dispose()
    assert journal(live) != rebuilt

    assert ido(monkeypatch, env, "recover", "view") == 0, capsys.readouterr()
    assert journal(live) == rebuilt
    assert {service: stored(live, service) for service in SERVICE_NAMES} == before


def test_a_running_projector_refuses_the_rebuild(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    runner = build_runner(live)
    stop = threading.Event()
    projector = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    projector.start()
    try:
        # the projector has joined its group once it applied what the topics hold
        wait_until(lambda: len(journal_or_none(live) or []) >= 4, 90, "the running projector's first rows")
        projected = journal(live)
        assert ido(monkeypatch, env, "recover", "view") == 1
        said = capsys.readouterr().out
        assert f"a projector is running: consumer group {live.topic_prefix}ledger-balances has 1 member(s)" in said
        assert "nothing dropped" in said
        assert journal(live) == projected
    finally:
        stop.set()
        projector.join(timeout=30)
        runner.close()
    assert not projector.is_alive()


def journal_or_none(settings: Settings) -> list[tuple[Any, ...]] | None:
    """The journal, or None while the projector has not created it yet."""
    try:
        return journal(settings)
    except (OperationalError, ProgrammingError):
        return None
