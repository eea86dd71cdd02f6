"""A posting or reversal recorded after its year's close (issue 16): the live projection and the audit
replay both count its money (the books never drop an event) and both name it, by event id.

The write side refuses such events now; a topic can still hold them (a store written before, a
writer that bypassed the ledger). Built here as envelopes, applied without a broker.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from contracts.canonical import canonical_json, parse_utc
from services.audit.replay import Replay
from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from services.ledger.entrypoints.definition import create_app
from services.ledger.read_side import LedgerQueries, PointInTime, balances_projection
from tests.ledger.events import Streams, at
from tests.operators.test_dashboard_access import sign_in
from tests.support.tokens import TokenFactory

CODE = "GM0363"


def posting(s: Streams, cents: int, recorded_at: str) -> dict[str, Any]:
    expenditure_id = str(uuid.uuid4())
    return s.event("ExpenditureRecorded", f"expenditure-{expenditure_id}", CODE, recorded_at,
                   expenditure_id=expenditure_id, municipality_code=CODE, grant_year=2024, category="promotion",
                   amount_cents=cents, booked_on="2024-03-01", counterparty={"id": "P", "name": "Printer"},
                   description="illustrative", reference="R")


def history() -> tuple[Streams, list[str]]:
    """A posting, the close, then a posting and a reversal of the first recorded after the close."""
    s = Streams("")
    first = posting(s, 100, at("2024-03-02"))
    s.event("YearClosed", f"books-{CODE}-2024", CODE, at("2025-06-30"), municipality_code=CODE, grant_year=2024,
            closed_on="2025-06-30", closed_by="auditor", final_account=True)
    late = posting(s, 7, at("2025-07-01"))
    p = first["payload"]
    reversal = s.event("ExpenditureReversed", first["stream_id"], CODE, at("2025-07-02"),
                       expenditure_id=p["expenditure_id"], municipality_code=CODE, grant_year=2024,
                       reverses_event_id=first["event_id"], amount_cents=100, category="promotion",
                       booked_on="2024-03-01", reason="booked twice")
    return s, [late["event_id"], reversal["event_id"]]


def test_events_recorded_after_the_close_are_counted_and_named_live_and_in_the_replay(tmp_path: Path) -> None:
    s, late = history()
    settings = load_settings(
        {"IDO_EVENT_STORE": "sqlite", "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys")}
    )
    engine = create_sql_engine(settings.view_db_url)
    projection = balances_projection()
    projection.create_tables(engine)
    with engine.begin() as connection:  # one batch: the close and what follows it in one poll
        projection.apply_batch(connection, s.sent[0][0], [envelope for _t, _k, envelope in s.sent])
    queries = LedgerQueries(engine)

    for point in (PointInTime(), PointInTime(known_at=parse_utc(at("2025-07-01")))):
        replay = Replay(known_at=point.known_at)
        for topic, _key, envelope in s.sent:
            replay.feed(topic, canonical_json(envelope))
        replay.finish()
        live = {k: v for k, v in queries.balances(CODE, 2024, point).items() if k != "offsets"}
        assert replay.balances(CODE, 2024) == live
        known = late if point.known_at is None else late[:1]
        assert live["recorded_after_close_event_ids"] == sorted(known)
        assert live["recorded_after_close_count"] == len(known)
        assert [e["event_id"] for e in replay.stats.after_close] == known
        assert replay.document()["stats"]["recorded_after_close"] == len(known)
        # the money still follows the events: 100 posted, 7 posted late, 100 reversed late
        assert live["spent_cents"] == (7 if point.known_at is None else 107)

    # the API and the dashboard show them to people
    tokens = TokenFactory(settings)  # creates the signing keys the app reads
    app = create_app(settings)
    try:
        client = app.test_client()
        answer = client.get(f"/v1/municipalities/{CODE}/balances/2024", headers=tokens.headers("auditor")).json
        assert answer["recorded_after_close_event_ids"] == sorted(late), answer
        sign_in(client, tokens.token("auditor"))
        page = client.get(f"/dashboard/municipalities/{CODE}/2024").get_data(as_text=True)
        assert 'id="after-close"' in page and all(event_id in page for event_id in late)
    finally:
        app.extensions["ido.operations"].close()
        app.extensions["ledger"].application.close()

    replay = Replay()
    for topic, _key, envelope in s.sent[:2]:  # the posting before the close and the close: nothing to name
        replay.feed(topic, canonical_json(envelope))
    replay.finish()
    assert replay.balances(CODE, 2024)["recorded_after_close_count"] == 0 and replay.stats.after_close == []
