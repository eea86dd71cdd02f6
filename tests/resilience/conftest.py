"""Fixtures of the resilience suite: processes ended at the end of every test, the run's figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.resilience.figures import Figures
from tests.resilience.support import Processes, drop_database, fresh_database
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import OwnCluster

_FIGURES = Figures()


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    yield _FIGURES


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    selection = session.config.getoption("markexpr", "") or "all"
    path = _FIGURES.write(selection)
    if path is not None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"resilience figures: {path}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        _FIGURES.outcomes[item.nodeid] = outcome
    return report


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Every process the test starts; all of them are ended when it ends, whatever happened."""
    processes = Processes(tmp_path / "logs")
    try:
        yield processes
    finally:
        processes.close()


@pytest.fixture
def database(postgres_server: PostgresInfo) -> Iterator[PostgresInfo]:
    """A fresh database on the suite's PostgreSQL server."""
    db = fresh_database(postgres_server)
    try:
        yield db
    finally:
        drop_database(postgres_server, db)


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnCluster]:
    """A three-broker cluster of the test's own (the faults under load), stopped whatever happened."""
    with OwnCluster(tmp_path_factory.mktemp("kafka-cluster-faults")) as own:
        yield own
