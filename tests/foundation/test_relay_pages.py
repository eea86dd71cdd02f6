"""The relay's page worker (services/common/relay_pages.py): its pages are the ones the relay would make itself,
a prefetched page is used only where the relay stands, and the child goes away with its relay."""

from __future__ import annotations

import os
import time
from pathlib import Path

from contracts.provenance import PROOF_HEADER, SEAL_HEADER
from services.common.config import load_settings
from services.common.eventstore import build_application
from services.common.relay_pages import LocalPages, WorkerPages, worker_spec
from services.common.signing import build_sealer
from tests.support.toy import TOY_TOPIC, Counter, ToyApplication


def _store(tmp_path: Path, events: int) -> tuple[ToyApplication, dict[str, str]]:
    settings = load_settings({"IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"),
                              "IDO_EVENT_STORE": "sqlite"})
    env = settings.eventsourcing_env("toy")
    app = build_application(ToyApplication, env)
    counter = Counter.start("pages")
    for step in range(events - 1):
        counter.add(step + 1)
    app.save(counter)
    return app, env


def _without_seals(messages: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> list[object]:
    return [(key, value, [h for h in headers if h[0] not in (SEAL_HEADER, PROOF_HEADER)])
            for key, value, headers in messages]


def test_the_workers_pages_are_the_relays_own(tmp_path: Path) -> None:
    app, env = _store(tmp_path, 25)
    settings = load_settings({"IDO_KEYS_DIR": str(tmp_path / "keys")})
    sealer = build_sealer(settings, "toy", TOY_TOPIC.name)
    local = LocalPages(app, batch_size=4)
    worker = WorkerPages(worker_spec(ToyApplication, env, 4, sealer))
    try:
        for after, limit in ((0, 10), (10, 10), (20, 10), (25, 10)):
            mine, theirs = local.page(after, limit, sealer), worker.page(after, limit, sealer)
            assert (theirs.after, theirs.last_id, theirs.sealed) == (mine.after, mine.last_id, mine.sealed)
            assert _without_seals(theirs.messages) == _without_seals(mine.messages)
            # one seal per batch of 4, with a proof per message
            assert [len(h) for _k, _v, h in theirs.messages] == [len(h) for _k, _v, h in mine.messages]
            assert len({dict(h)[SEAL_HEADER] for _k, _v, h in theirs.messages}) == -(-len(theirs.messages) // 4)
        unsealed = worker.page(0, 10, None)
        assert not unsealed.sealed and _without_seals(unsealed.messages) == unsealed.messages
    finally:
        worker.close()
        app.close()


def test_a_prefetched_page_is_used_only_where_the_relay_stands(tmp_path: Path) -> None:
    app, env = _store(tmp_path, 30)
    worker = WorkerPages(worker_spec(ToyApplication, env, 5, None))
    try:
        first = worker.page(0, 10, None)
        worker.prefetch(first.last_id, 10, None)
        # the first page failed (not recorded): the relay asks again from 0 and gets it again, not the next one
        again = worker.page(0, 10, None)
        assert again == first
        worker.prefetch(again.last_id, 10, None)
        second = worker.page(again.last_id, 10, None)
        assert second.after == first.last_id and second.messages and second.messages[0] != first.messages[0]
        worker.prefetch(30, 10, None)  # caught up: an empty prefetched page is read again, as new events may come
        assert worker.page(30, 10, None).messages == []
    finally:
        worker.close()
        app.close()


def test_the_worker_goes_away_with_its_relay(tmp_path: Path) -> None:
    app, env = _store(tmp_path, 3)
    worker = WorkerPages(worker_spec(ToyApplication, env, 5, None))
    worker.start()
    process = worker._process
    assert process is not None and process.poll() is None
    connection = worker._connection
    assert connection is not None
    connection.close()  # as when the relay dies: its end of the socket closes
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() == 0, "the worker outlived its relay"
    worker.close()
    app.close()
    assert not os.path.exists(f"/proc/{process.pid}/status") or process.returncode is not None
