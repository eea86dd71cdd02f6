"""Constructs a service's eventsourcing Application on the configured event store."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from eventsourcing.application import Application

TApp = TypeVar("TApp", bound=Application)


def build_application(app_class: type[TApp], env: dict[str, str]) -> TApp:
    sqlite_file = env.get("SQLITE_DBNAME")
    if sqlite_file and sqlite_file != ":memory:" and "mode=memory" not in sqlite_file:
        Path(sqlite_file).parent.mkdir(parents=True, exist_ok=True)
    return app_class(env={"CREATE_TABLE": "y", **env})
