"""PostgreSQL away in the middle of requests (the ledger's connections reset, new ones refused): a
request spends at most its outage budget in the event store's retries (services/common/outage_budget.py)
and answers 503 with Retry-After; its retry with the same Idempotency-Key, once the database is
back, stores the rows once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.common.config import Settings, load_settings
from services.common.outage_budget import REQUEST_OUTAGE_BUDGET_S
from tests.ledger.conftest import AMSTERDAM, OPEN_YEARS, expenditure
from tests.ledger.test_write_side import own, stored_events
from tests.support.infra import PostgresInfo
from tests.support.tcp_cut import CuttableLink
from tests.support.tokens import TokenFactory

POST = f"/v1/municipalities/{AMSTERDAM}/expenditures"
IMPORT = f"/v1/municipalities/{AMSTERDAM}/expenditures:import"
HEADER = "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"


def rows(tag: str) -> str:
    lines = (f"2024,promotion,{100 + n},2024-05-01,SUP-{n},Supplier {n},flyers,{tag}-{n}\n" for n in range(3))
    return HEADER + "".join(lines)


@pytest.fixture
def link(postgres_db: PostgresInfo) -> Iterator[CuttableLink]:
    with CuttableLink(postgres_db.host, postgres_db.port) as relayed:
        yield relayed


@pytest.fixture
def settings(tmp_path: Path, postgres_db: PostgresInfo, link: CuttableLink) -> Settings:
    env = {"IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"), **OPEN_YEARS}
    return load_settings({**env, **postgres_db.settings_env(), "POSTGRES_PORT": str(link.port)})


def test_an_import_while_postgres_is_away_answers_503_within_its_budget_and_its_retry_stores_it_once(
    client: FlaskClient, tokens: TokenFactory, link: CuttableLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.post(POST, json=expenditure(), headers=own(tokens, "before")).status_code == 201
    before = stored_events(client)

    # Cut once the request is under way: its idempotency claim is stored, its event-store reads fail.
    ledger = client.application.extensions["ledger"].application
    find_expenditure = ledger.find_expenditure

    def find_after_the_cut(expenditure_id: Any) -> Any:
        link.cut()
        # The pool drops its dead connections (as it had, under load, in make resilience's restart test),
        # so each attempt waits the pool's timeout for a connection that cannot come.
        ledger.recorder.datastore.pool.check()
        return find_expenditure(expenditure_id)

    monkeypatch.setattr(ledger, "find_expenditure", find_after_the_cut)
    started = time.monotonic()
    away = client.post(IMPORT, data=rows("away"), content_type="text/csv", headers=own(tokens, "import-away"))
    took_s = time.monotonic() - started
    assert away.status_code == 503, away.get_json()
    assert away.headers["Retry-After"] == "2"
    assert away.get_json()["errors"] == {} and "not reachable" in away.get_json()["message"]
    # Unbounded, the store retries each of the import's operations 10 times, each attempt waiting the
    # pool's 1 s for a connection: 12 s for the first operation alone.
    assert took_s < REQUEST_OUTAGE_BUDGET_S + 2, f"the import answered after {took_s:.1f} s"
    refused = client.post(IMPORT, data=rows("away"), content_type="text/csv", headers=own(tokens, "import-away"))
    assert refused.status_code == 503  # the breaker: refused at once, until it closes

    monkeypatch.setattr(ledger, "find_expenditure", find_expenditure)
    link.mend()
    deadline = time.monotonic() + 30
    while True:  # as a client does: the same key, after Retry-After, until the database answers
        time.sleep(int(refused.headers["Retry-After"]))
        again = client.post(IMPORT, data=rows("away"), content_type="text/csv", headers=own(tokens, "import-away"))
        if again.status_code == 201:
            break
        assert again.status_code == 503 and time.monotonic() < deadline, again.get_json()
        refused = again
    after_retry = stored_events(client)
    replayed = client.post(IMPORT, data=rows("away"), content_type="text/csv", headers=own(tokens, "import-away"))
    assert replayed.status_code == 201 and replayed.get_json() == again.get_json()

    clean = client.post(IMPORT, data=rows("clean"), content_type="text/csv", headers=own(tokens, "import-clean"))
    assert clean.status_code == 201, clean.get_json()
    # The outage's attempts stored nothing: the import cost what the same import costs without one.
    assert after_retry - before == stored_events(client) - after_retry > 0
