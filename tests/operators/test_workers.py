"""Several gunicorn workers: all of them boot on a fresh store, and every scrape counts all of them."""

from __future__ import annotations

import http.client
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.auth import init_token_files
from services.common.config import load_settings
from services.common.startup_lock import startup_lock
from tests.resilience.support import Processes, free_port, wait_healthy
from tests.support.infra import KafkaInfo

WORKERS = 4
HEALTHZ_COUNT = re.compile(r'^ido_http_requests_total\{[^}]*route="/healthz"[^}]*status="200"[^}]*\} (\S+)$', re.M)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    found = Processes(tmp_path / "logs")
    yield found
    found.close()


def _get(port: int, path: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection each time
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200, path
        return response.read().decode()
    finally:
        connection.close()


def test_every_scrape_sums_the_counters_of_all_workers(
    processes: Processes, kafka: KafkaInfo, topic_prefix: str, tmp_path: Path
) -> None:
    env = {
        "IDO_DATA_DIR": str(tmp_path / "data"),
        "IDO_KEYS_DIR": str(tmp_path / "keys"),
        "IDO_EVENT_STORE": "sqlite",
        **kafka.settings_env(),
        "IDO_TOPIC_PREFIX": topic_prefix,
    }
    settings = load_settings(env)
    init_token_files(settings)
    port = free_port()
    server = processes.spawn(
        "payments", ["serve", "payments", "--port", str(port), "--workers", "2", "--threads", "2"], env, port=port
    )
    wait_healthy(server)
    counters = tmp_path / "data" / "run" / f"metrics-payments-{port}"
    sent = 0
    while len({p.name.split("_")[-1] for p in counters.glob("counter_*.db")}) < 2:  # both workers answered
        _get(port, "/healthz")
        sent += 1
        assert sent < 2000, "one worker answered every request"
    for _ in range(10):
        _get(port, "/healthz")
        sent += 1
    before_this_test = 1  # wait_healthy's own request
    for _ in range(6):
        scraped = [float(v) for v in HEALTHZ_COUNT.findall(_get(port, "/metrics"))]
        assert sum(scraped) >= sent + before_this_test
        assert sum(scraped) <= sent + before_this_test + 60  # wait_healthy may have polled a few times
    assert "process_cpu_seconds_total" not in _get(port, "/metrics")  # one worker's figure would mislead


def test_workers_starting_together_on_a_fresh_store_all_boot(
    processes: Processes, kafka: KafkaInfo, topic_prefix: str, store_env: dict[str, str]
) -> None:
    """Each worker creates its tables as it starts; without the start-up lock the losers of that
    race (a unique violation on PostgreSQL, "already exists" on SQLite) did not boot."""
    env = {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix}
    settings = load_settings(env)
    init_token_files(settings)
    port = free_port()
    server = processes.spawn(
        "ledger", ["serve", "ledger", "--port", str(port), "--workers", str(WORKERS), "--threads", "1"], env, port=port
    )
    wait_healthy(server)
    assert server.popen is not None
    deadline = time.monotonic() + 30
    while True:
        workers = subprocess.run(["pgrep", "-P", str(server.popen.pid)], capture_output=True, text=True).stdout.split()
        log = server.log_text()
        if len(workers) == WORKERS and log.count("Booting worker") == WORKERS or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "Traceback" not in log and "failed to boot" not in log.lower(), log[-3000:]
    assert log.count("Booting worker") == WORKERS and len(workers) == WORKERS, log[-3000:]


def test_the_startup_lock_admits_one_process_at_a_time(store_env: dict[str, str]) -> None:
    settings = load_settings(store_env)
    inside: list[tuple[float, float]] = []

    def hold() -> None:
        with startup_lock(settings):
            entered = time.monotonic()
            time.sleep(0.3)
            inside.append((entered, time.monotonic()))

    threads = [threading.Thread(target=hold) for _ in range(3)]  # each its own connection or file handle
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    spans = sorted(inside)
    assert len(spans) == 3
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
