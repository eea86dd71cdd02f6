"""`ido recover view`: the ledger's view dropped and projected again from offset 0, up to the topics' ends.

The documented re-projection (docs/operations.md, "Re-projecting the view"), done by one command. It
refuses while a projector is a member of the projection's consumer group (it would write into the tables
being dropped); it drops the view's own tables and the projection's offsets and applied ids, never an
event store's tables nor the ledger's recorded event ids, then projects until every partition reached the
end offset it had when the command started (later events are left to the projector, started after it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import CoordinatorNotAvailableError, NotCoordinatorError

from services.common.adapters.kafka import AdminClient, client_config
from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings
from services.common.consumer import ProjectionRunner, forget_consumer
from services.common.kafka_credentials import PROJECTOR
from services.common.recovery_refused import RecoveryRefused
from services.ledger.entrypoints.projector import build_runner
from services.ledger.read_side import balances_projection

COORDINATOR_WAIT_S = 30.0


@dataclass(frozen=True)
class ViewRebuilt:
    group_id: str
    messages: int
    partitions: int
    duration_s: float

    def lines(self) -> list[str]:
        return [
            f"view rebuilt: {self.messages} messages of {self.partitions} partitions projected from offset 0 "
            f"in {self.duration_s:.1f} s (group {self.group_id}); now start the projector (`ido project`)"
        ]


def rebuild_view(settings: Settings, timeout_s: float = 3600.0) -> ViewRebuilt:
    started = time.monotonic()
    projection = balances_projection()
    group_id = f"{settings.topic_prefix}{projection.name}"
    _refuse_a_running_projector(settings, group_id)
    engine = create_sql_engine(settings.view_db_url)
    try:
        projection.drop_tables(engine)
        forget_consumer(engine, projection.name)
    finally:
        engine.dispose()
    runner = build_runner(settings, group_id=group_id)
    try:
        ends = _end_offsets(runner)
        messages = _project_until(runner, ends, started + timeout_s)
    finally:
        runner.close()
    return ViewRebuilt(group_id, messages, len(ends), time.monotonic() - started)


def _refuse_a_running_projector(settings: Settings, group_id: str) -> None:
    admin = AdminClient(**client_config(settings, PROJECTOR), client_id="ido-recover-view")
    try:
        described = _described(admin, group_id)
    finally:
        admin.close()
    members = (described.get(group_id) or {}).get("members") or []
    if members:
        raise RecoveryRefused([
            f"a projector is running: consumer group {group_id} has {len(members)} member(s); stop it first",
            "nothing dropped",
        ])


def _described(admin: KafkaAdminClient, group_id: str) -> dict[str, Any]:
    """The group as its coordinator describes it. A broker whose group coordinator is not ready (its offsets
    topic still being made, a leader moving) answers so for a few seconds: asked again, bounded."""
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    for _attempt in range(int(COORDINATOR_WAIT_S / 0.5) + 1):
        try:
            found: dict[str, Any] = admin.describe_groups([group_id])
            return found
        except (CoordinatorNotAvailableError, NotCoordinatorError):
            if time.monotonic() > deadline:
                raise
            threading.Event().wait(0.5)
    raise TimeoutError(f"no coordinator of group {group_id} within {COORDINATOR_WAIT_S} s")


def _end_offsets(runner: ProjectionRunner) -> dict[TopicPartition, int]:
    partitions = [
        TopicPartition(topic, partition)
        for topic in runner.topics
        for partition in sorted(runner.consumer.partitions_for_topic(topic) or ())
    ]
    return dict(runner.consumer.end_offsets(partitions)) if partitions else {}


def _project_until(runner: ProjectionRunner, ends: dict[TopicPartition, int], deadline: float) -> int:
    """Applies polls until the stored offset of every partition reached its end; bounded by ``deadline``."""
    handled = 0
    while True:
        stored = runner.offsets.next_offsets(list(ends))
        behind = [tp for tp, end in ends.items() if end > (stored[tp] or 0)]
        if not behind:
            return handled
        if time.monotonic() > deadline:
            names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in behind)
            raise TimeoutError(f"the view is not rebuilt up to the ends of {names} yet; run `ido project` to finish")
        handled += runner.run_once(timeout_ms=500)
