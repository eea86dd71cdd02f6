"""Closing a year is one serialised decision with the postings into it (issue 16, Must show 2).

The race: 50 postings into one (municipality, year) sent at once with its close, through HTTP on
real threads, on SQLite and on PostgreSQL, five rounds. Whatever the interleaving, the event store
must hold no posting of the year after its ``YearClosed``; every posting answered 201 is stored
before it, every other one got 409 ``grant_year``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.ledger.application.app import LedgerApplication
from services.ledger.domain.model import Books, Expenditure
from tests.ledger.conftest import expenditure
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


@pytest.mark.slow
def test_fifty_postings_racing_one_close_never_land_after_it(client: FlaskClient, tokens: TokenFactory) -> None:
    application: LedgerApplication = client.application.extensions["ledger"].application
    for round_ in range(ROUNDS):
        code = f"GM{9000 + round_:04d}"
        url = f"/v1/municipalities/{code}/expenditures"
        headers = tokens.headers("municipality", code)
        close_headers = tokens.headers("ministry")
        start = threading.Barrier(POSTINGS + 1)

        def post(i: int, url: str = url, headers: dict[str, str] = headers, start: threading.Barrier = start) -> Any:
            start.wait()
            return client.post(url, json=expenditure(reference=f"race-{i}"), headers=headers)

        def close(code: str = code, start: threading.Barrier = start) -> Any:
            start.wait()
            return client.post(
                f"/v1/municipalities/{code}/years/2024/close", json={"final_account": True}, headers=close_headers
            )

        with ThreadPoolExecutor(max_workers=POSTINGS + 1) as pool:
            postings = [pool.submit(post, i) for i in range(POSTINGS)]
            closing = pool.submit(close)
            answers = [p.result() for p in postings]
            closed = closing.result()
        assert closed.status_code == 201, closed.json
        accepted = [a for a in answers if a.status_code == 201]
        refused = [a for a in answers if a.status_code != 201]
        assert all(a.status_code == 409 and "grant_year" in a.json["errors"] for a in refused), [
            (a.status_code, a.json) for a in refused
        ]
        before, after = postings_after_close(application, code, 2024)
        assert after == 0, f"round {round_}: {after} posting(s) recorded after the close"
        assert before == len(accepted)
