"""Constructs a service's eventsourcing Application on the configured event store."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from eventsourcing.application import Application

TApp = TypeVar("TApp", bound=Application)


def build_application(app_class: type[TApp], env: dict[str, str]) -> TApp:
    """The application; with ``IDO_RECORD_KEY_FILE`` in ``env`` its mapper adds the writer's MAC to
    every chained event it stores (the key is created when missing; services/common/signing.py)."""
    from services.common.adapters.guarded_recorders import GuardedPostgresApplicationRecorder
    from services.common.adapters.writers_in_turn import WritersInTurn
    from services.common.config import WRITER_TURN_NAME
    from services.common.outage_budget import bound_retries
    from services.common.signing import RecordMacMapper, ensure_record_key

    sqlite_file = env.get("SQLITE_DBNAME")
    if sqlite_file and sqlite_file != ":memory:" and "mode=memory" not in sqlite_file:
        Path(sqlite_file).parent.mkdir(parents=True, exist_ok=True)
    application = app_class(env={"CREATE_TABLE": "y", **env})
    turn_name = env.get(WRITER_TURN_NAME)
    if isinstance(application.recorder, GuardedPostgresApplicationRecorder):
        if turn_name:
            Path(turn_name).parent.mkdir(parents=True, exist_ok=True)
            application.recorder.writer_turn = WritersInTurn(turn_name)
        bound_retries(application.recorder.datastore)  # a request's retries stop after its budget (outage_budget.py)
    record_key_file = env.get("IDO_RECORD_KEY_FILE")
    if record_key_file and isinstance(application.mapper, RecordMacMapper):
        application.mapper.record_key = ensure_record_key(Path(record_key_file))
    return application
