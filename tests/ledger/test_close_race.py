"""Closing a year is one serialised decision with the postings into it (issue 16, Must show 2).

The race: 50 postings into one (municipality, year) sent at once with its close, through HTTP on
real threads, on SQLite and on PostgreSQL, five rounds. Whatever the interleaving, the event store
must hold no posting of the year after its ``YearClosed``; every posting answered 201 is stored
before it, every other one got 409 ``grant_year``. 1-5 s a store here, so it runs in ``make test``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError
from flask.testing import FlaskClient

from services.common.group_commit import _Pending
from services.common.stream_guard import GUARDS, GuardBroken
from services.ledger.application.app import LedgerApplication
from services.ledger.domain.model import Books, Expenditure
from tests.ledger.conftest import AMSTERDAM, UTRECHT, expenditure
from tests.ledger.test_write_side import CSV, POST
from tests.support.tokens import TokenFactory

ROUNDS = 5
POSTINGS = 50


def store_order(application: LedgerApplication) -> list[Any]:
    """The ledger's events in the order the store recorded them (the order the relay publishes)."""
    notifications = application.recorder.select_notifications(start=None, limit=1_000_000)
    return [application.mapper.to_domain_event(n) for n in notifications]


def postings_after_close(application: LedgerApplication, code: str, year: int) -> tuple[int, int]:
    """(postings of the year stored before its close, postings stored after it)."""
    before = after = 0
    closed = False
    for event in store_order(application):
        if isinstance(event, Books.Closed) and (event.municipality_code, event.grant_year) == (code, year):
            closed = True
        elif isinstance(event, Expenditure.Recorded) and (event.municipality_code, event.grant_year) == (code, year):
            if closed:
                after += 1
            else:
                before += 1
    assert closed, "the close was not stored"
    return before, after


def race(client: FlaskClient, tokens: TokenFactory, code: str) -> tuple[Any, list[Any]]:
    """``POSTINGS`` postings into ``code``'s 2024 and its close, released together; their answers."""
    url = f"/v1/municipalities/{code}/expenditures"
    headers = tokens.headers("municipality", code)
    close_headers = tokens.headers("ministry")
    start = threading.Barrier(POSTINGS + 1)

    def post(i: int) -> Any:
        start.wait()
        return client.post(url, json=expenditure(reference=f"race-{i}"), headers=headers)

    def close() -> Any:
        start.wait()
        return client.post(
            f"/v1/municipalities/{code}/years/2024/close", json={"final_account": True}, headers=close_headers
        )

    with ThreadPoolExecutor(max_workers=POSTINGS + 1) as pool:
        postings = [pool.submit(post, i) for i in range(POSTINGS)]
        closing = pool.submit(close)
        return closing.result(), [p.result() for p in postings]


def test_fifty_postings_racing_one_close_never_land_after_it(client: FlaskClient, tokens: TokenFactory) -> None:
    application: LedgerApplication = client.application.extensions["ledger"].application
    for round_ in range(ROUNDS):
        code = f"GM{9000 + round_:04d}"
        closed, answers = race(client, tokens, code)
        assert closed.status_code == 201, closed.json
        accepted = [a for a in answers if a.status_code == 201]
        refused = [a for a in answers if a.status_code != 201]
        assert all(a.status_code == 409 and "grant_year" in a.json["errors"] for a in refused), [
            (a.status_code, a.json) for a in refused
        ]
        before, after = postings_after_close(application, code, 2024)
        assert after == 0, f"round {round_}: {after} posting(s) recorded after the close"
        assert before == len(accepted)


# -- the same decision, deterministic (make test) ---------------------------------------------------


def books_read_before_the_close(application: LedgerApplication, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's first look at the books sees them as before the close (None: open), as a command
    that checked just before a close committed and saves just after it; later looks see the store."""
    real = application.find_books
    stale = [True]

    def find_books(code: str, year: int) -> Books | None:
        if stale.pop() if stale else False:
            return None
        return real(code, year)

    monkeypatch.setattr(application, "find_books", find_books)


def test_a_posting_reversal_or_import_checked_before_the_close_but_saved_after_it_is_refused(
    client: FlaskClient, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    application: LedgerApplication = client.application.extensions["ledger"].application
    own = tokens.headers("municipality", AMSTERDAM)
    posted = client.post(POST, json=expenditure(), headers=own).json
    close = f"/v1/municipalities/{AMSTERDAM}/years/2024/close"
    assert client.post(close, json={"final_account": True}, headers=tokens.headers("ministry")).status_code == 201
    stored = len(store_order(application))

    books_read_before_the_close(application, monkeypatch)
    refused = client.post(POST, json=expenditure(reference="late"), headers=own)
    assert refused.status_code == 409 and "grant_year" in refused.json["errors"], refused.json
    assert "closed" in refused.json["message"]

    books_read_before_the_close(application, monkeypatch)
    reversal = client.post(f"{POST}/{posted['expenditure_id']}/reversal", json={"reason": "late"}, headers=own)
    assert reversal.status_code == 409 and "grant_year" in reversal.json["errors"], reversal.json

    books_read_before_the_close(application, monkeypatch)
    imported = client.post(f"{POST}:import", data=CSV, content_type="text/csv", headers=own)
    assert imported.status_code == 409 and "line 2.grant_year" in imported.json["errors"], imported.json

    assert len(store_order(application)) == stored
    assert postings_after_close(application, AMSTERDAM, 2024) == (1, 0)


def test_a_batch_with_a_posting_into_a_year_closed_meanwhile_stores_the_others(client: FlaskClient) -> None:
    """The group commit saves concurrent postings in one transaction: the one whose year closed after
    its check is refused on its own; the others of the batch still commit, together."""
    application: LedgerApplication = client.application.extensions["ledger"].application
    application.close_year(AMSTERDAM, 2024, closed_by="ministry", final_account=True)
    late = new_posting(application, AMSTERDAM)  # decided on books read before the close
    open_ = new_posting(application, UTRECHT)
    batch = [_Pending(list(e.collect_events()), application._while_open(e)) for e in (late, open_)]
    batches = application.postings.batches

    application.postings._commit(batch)

    assert isinstance(batch[0].error, GuardBroken) and batch[0].recordings == []
    assert batch[1].error is None and len(batch[1].recordings) == 1
    assert application.postings.batches == batches + 1
    assert application.find_expenditure(late.expenditure_id) is None
    assert application.find_expenditure(open_.expenditure_id) is not None


def new_posting(application: LedgerApplication, code: str) -> Expenditure:
    body = expenditure()
    return application._new_expenditure(
        code, uuid4(), {**body, "booked_on": date.fromisoformat(body["booked_on"])}, None,
        application.grant_year(code, 2024),
    )



def test_a_save_whose_insert_fails_leaves_no_noted_id_and_the_next_save_goes_through(client: FlaskClient) -> None:
    """The recorder's transaction (on PostgreSQL sent as one text of statements: guarded_recorders.py) stores nothing of
    a save whose events' insert fails: neither the events nor the ids noted beside them in the same transaction;
    a refused guard the same; and the connection it used serves the next save."""
    application: LedgerApplication = client.application.extensions["ledger"].application
    application.save(new_posting(application, AMSTERDAM))
    posted = store_order(application)[-1]
    stored = len(store_order(application))
    one, rival = (application.repository.get(posted.originator_id) for _ in range(2))
    for expenditure_, reason in ((one, "one"), (rival, "two")):
        expenditure_.reverse(reason=reason, booked_on=None, today=date(2024, 6, 1), books=None)
    application.save(one)
    rivals_events = list(rival.collect_events())
    with pytest.raises(IntegrityError):  # the same version of the stream: the insert fails
        application.save(*rivals_events)
    assert len(store_order(application)) == stored + 1
    assert application.recorded_events.owner_of(str(rivals_events[0].event_id)) == (False, None)

    application.close_year(UTRECHT, 2024, closed_by="ministry", final_account=True)
    late = new_posting(application, UTRECHT)
    with pytest.raises(GuardBroken):
        application.save(late, **{GUARDS: application._while_open(late)})
    assert application.find_expenditure(late.expenditure_id) is None

    after = new_posting(application, AMSTERDAM)
    after_event_id = str(after.pending_events[0].event_id)
    application.save(after)
    assert application.find_expenditure(after.expenditure_id) is not None
    assert application.recorded_events.owner_of(after_event_id) == (True, AMSTERDAM)
