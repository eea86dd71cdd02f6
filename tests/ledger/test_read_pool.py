"""The read engines hold a fixed set of connections: a burst of reads waits for one, never opens its own.

Issue 17, eleventh round: the default pool opened a connection beyond its size for each read of a burst and
closed it when it came back (~500 PostgreSQL backends started in 12 s of bench row 5). Without overflow,
a read that held one connection and asked for a second would wait for itself when the pool is empty; the
second test runs every read of the ledger's API and dashboard on a pool of one.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from services.common.adapters import sql
from services.common.config import Settings
from tests.resilience.test_authorization_matrix import CELLS, World


def test_a_burst_of_reads_opens_no_connection_beyond_the_pool(settings: Settings) -> None:
    engine = sql.create_read_engine(settings.view_db_url)
    opened: list[int] = []
    event.listen(engine, "connect", lambda *_args: opened.append(1))
    start = threading.Barrier(4 * sql.READ_CONNECTIONS)

    def read() -> None:
        start.wait()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
            time.sleep(0.05)  # held: the others of the burst find the pool in use

    def burst() -> None:
        threads = [threading.Thread(target=read) for _ in range(4 * sql.READ_CONNECTIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        start.reset()

    burst()
    assert 1 <= len(opened) <= sql.READ_CONNECTIONS
    first = len(opened)
    burst()
    assert len(opened) == first  # the second burst reused them: nothing opened, nothing closed
    engine.dispose()


LEDGER_READS = [c for c in CELLS if c.service == "ledger" and c.method == "GET" and not c.public]


@pytest.mark.parametrize("cell", LEDGER_READS, ids=lambda c: c.path)
def test_every_read_of_the_ledger_answers_with_one_connection(
    cell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "READ_CONNECTIONS", 1)
    monkeypatch.setattr(sql, "READ_POOL_TIMEOUT_S", 2.0)  # a second connection asked for fails in 2 s, not 30
    world = World(tmp_path, "ledger", cell.world)
    started = time.monotonic()
    status = world.request(cell, cell.allowed[0])
    assert 200 <= status < 300, f"{cell.path} as {cell.allowed[0]}: {status}"
    assert time.monotonic() - started < 2.0
