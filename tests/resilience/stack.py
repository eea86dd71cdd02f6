"""What the process tests share: preparing the payments service, the load's bodies, and reading the
event stores, the topics and the ledger's view to count every event (lost, doubled)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, func, select

from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.common.adapters.kafka import ClientConfig
from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings, load_settings
from services.common.consumer import ProjectionRunner, applied_events
from services.common.definition import service_definition
from services.common.domain.chained import envelope_of
from services.common.eventstore import build_application
from services.common.signing import build_provenance_check
from services.ledger.read_side import PROJECTION_NAME, BalancesProjection
from services.ledger.read_side.sql.view import journal
from services.payments.demo import ANNEX_DEMO_FILE
from tests.resilience.support import Client, wait_for
from tests.support.kafka_topics import admin_config

YEAR = 2024
MUNICIPALITIES = ("GM0363", "GM0599", "GM0518", "GM0344", "GM0014", "GM0772")
CATEGORIES = ("library_funding", "promotion", "network_orchestration")


BRIDGE_LIBRARY = "NL-KVK-41215098"


def prepare_bridge(client: Client, libraries: Sequence[str] = (BRIDGE_LIBRARY,)) -> None:
    """The bridging frame, libraries (the first OBA, in GM0363; the others in the next municipalities) serving
    10 million inhabitants together, so that their grants fill most of the frame, and the grants, through the API."""
    frame = client.post("/bridge/frame", {})
    assert frame.status == 201, frame
    for index, library_id in enumerate(libraries):
        library = client.post("/bridge/libraries", {
            "library_id": library_id, "name": "OBA" if index == 0 else f"Bibliotheek {index + 1}",
            "service_area": [{"municipality_code": MUNICIPALITIES[index % len(MUNICIPALITIES)],
                              "inhabitants": 10_000_000 // len(libraries)}]})
        assert library.status == 201, library
    grants = client.post("/bridge/grant-batches")
    assert grants.status == 201, grants


def prepare_payments(client: Client) -> None:
    """The 2024 frame and the demo annex (six municipalities), through the API."""
    frame = client.put(f"/v1/years/{YEAR}/frame", {"frame_cents": 1_713_000_000, "decided_on": "2023-12-01"})
    assert frame.status in (200, 201), frame
    annex = client.post(
        f"/v1/years/{YEAR}/annex?awarded_on=2024-01-15", raw=ANNEX_DEMO_FILE.read_bytes(), content_type="text/csv"
    )
    assert annex.status in (200, 201), annex


def expenditure(n: int, amount_cents: int, tag: str = "load") -> dict[str, Any]:
    category = CATEGORIES[n % 3]
    counterparty = {"id": "NL-KVK-41215098", "name": "OBA"} if category == "library_funding" else {
        "id": f"SUP-{n % 7}", "name": f"Supplier {n % 7}"
    }
    return {
        "grant_year": YEAR,
        "category": category,
        "amount_cents": amount_cents,
        "booked_on": f"2024-{(n % 12) + 1:02d}-{(n % 27) + 1:02d}",
        "counterparty": counterparty,
        "description": f"{tag} posting {n}",
        "reference": f"{tag}-{n}",
    }


# ------------------------------------------------------------------------------------------------
# Reading back
# ------------------------------------------------------------------------------------------------


def stored_envelopes(settings: Settings, service: str) -> list[dict[str, Any]]:
    """Every event of a service's store, as its envelope, in notification order."""
    definition = service_definition(service)
    application = build_application(definition.application_class, settings.eventsourcing_env(service))
    found: list[dict[str, Any]] = []
    start = 1
    while True:
        page = application.recorder.select_notifications(start=start, limit=1000)
        found.extend(envelope_of(application.mapper.to_domain_event(n)) for n in page)
        if len(page) < 1000:
            break
        start = page[-1].id + 1
    application.close()
    return found


def topic_records(kafka_config: ClientConfig, topic: str, timeout_s: float = 60) -> tuple[list[Any], bool]:
    """Every record on a topic up to its end offsets at the time of the call, and whether the end was
    reached within ``timeout_s``."""
    consumer = KafkaConsumer(**kafka_config, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return [], True
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend(batch)
        return found, all(consumer.position(tp) >= ends[tp] for tp in partitions)
    finally:
        consumer.close()


def topic_envelopes(kafka_config: ClientConfig, topic: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    """Every message on a topic, up to its end offsets at the time of the call."""
    records, at_end = topic_records(kafka_config, topic, timeout_s)
    assert at_end, f"could not read {topic} to its end"
    return [json.loads(record.value) for record in records]


def applied_ids(engine: Engine, consumer: str = PROJECTION_NAME) -> Counter[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(applied_events.c.event_id).where(applied_events.c.consumer == consumer)
        ).scalars()
        return Counter(rows)


def journal_sums(engine: Engine) -> dict[tuple[Any, ...], tuple[int, int]]:
    """(kind, municipality, library, year, category) -> (cents, rows): every figure the balances are made of."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                journal.c.kind, journal.c.municipality_code, journal.c.library_id, journal.c.year,
                journal.c.category, func.sum(journal.c.amount_cents), func.count(),
            ).group_by(
                journal.c.kind, journal.c.municipality_code, journal.c.library_id, journal.c.year, journal.c.category
            )
        ).all()
    return {tuple(row[:5]): (int(row[5]), int(row[6])) for row in rows}


def journal_event_counts(engine: Engine) -> Counter[str]:
    """How many line-1 journal rows each event has (must be at most 1)."""
    with engine.connect() as connection:
        return Counter(connection.execute(select(journal.c.event_id).where(journal.c.line == 1)).scalars())


def replay_from_scratch(
    env: dict[str, str], tmp: Path, expected_events: int, timeout_s: float = 120
) -> tuple[Engine, int]:
    """A fresh projection of the three topics into a fresh SQLite view, from offset 0."""
    settings = load_settings({**env, "IDO_VIEW_DB_URL": f"sqlite:///{tmp / 'replay-view.sqlite'}"})
    projection = BalancesProjection()
    engine = create_sql_engine(settings.view_db_url)
    runner = ProjectionRunner(
        projection=projection,
        engine=engine,
        topics=[settings.topic(spec.name) for spec in (GRANTS, BRIDGE, EXPENDITURES)],
        kafka_config=admin_config(settings),  # the test's own check, on a test-only dead-letter topic
        dead_letter_topic=settings.topic("ido.deadletter.replay"),
        group_id=f"{settings.topic_prefix}replay-{tmp.name}",
        provenance=build_provenance_check(settings),
    )
    try:
        deadline = time.monotonic() + timeout_s
        while runner.stats.applied < expected_events and time.monotonic() < deadline:
            runner.run_once(timeout_ms=500)
    finally:
        runner.close()
    return engine, runner.stats.applied


@dataclass
class Tally:
    """Per service: events stored, on the topic (distinct), applied by the view (distinct and doubled)."""

    stored: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    lost_ids: set[str] = field(default_factory=set)
    """Each lost event once, however many views it is missing from."""

    @property
    def expected(self) -> int:
        return sum(self.stored.values())


def tally(
    env: dict[str, str], view_engine: Engine, services: tuple[str, ...], accepted_event_ids: Set[str] = frozenset()
) -> Tally:
    """Every event in every store must be on its topic and applied exactly once by the view; every
    event a client was answered 201 for must be in a store."""
    settings = load_settings(env)
    result = Tally()
    in_stores: set[str] = set()
    applied = applied_ids(view_engine)
    lines = journal_event_counts(view_engine)
    for service in services:
        envelopes = stored_envelopes(settings, service)
        result.stored[service] = len(envelopes)
        ids = [e["event_id"] for e in envelopes]
        assert len(ids) == len(set(ids)), f"{service}: an event id twice in the store"
        in_stores.update(ids)
        topic = settings.topic(service_definition(service).topic.name)
        on_topic = {e["event_id"] for e in topic_envelopes(admin_config(settings), topic)}
        result.lost += [f"{service}: {i} not on {topic}" for i in ids if i not in on_topic]
        result.lost += [f"{service}: {i} not applied by the view" for i in ids if applied[i] == 0]
        result.lost_ids.update(i for i in ids if i not in on_topic or applied[i] == 0)
        result.doubled += [f"{service}: {i} applied {applied[i]} times" for i in ids if applied[i] > 1]
        result.doubled += [f"{service}: {i} has {lines[i]} journal lines 1" for i in ids if lines[i] > 1]
    result.lost += [f"answered 201 but not stored: {i}" for i in accepted_event_ids if i not in in_stores]
    result.lost_ids.update(i for i in accepted_event_ids if i not in in_stores)
    return result


def wait_until_projected(view_engine: Engine, event_ids: set[str], timeout_s: float) -> bool:
    """Waits (bounded) until every event is applied by the view; False when some never were: the
    caller then counts what is missing (``verify``) before it fails, so the figures hold the loss."""

    def done() -> bool:
        try:
            applied = applied_ids(view_engine)
        except Exception:  # noqa: BLE001 - the view's tables may not exist yet
            return False
        return all(applied[i] for i in event_ids)

    try:
        wait_for(done, timeout_s, f"{len(event_ids)} events to be projected", interval_s=0.5)
    except AssertionError:
        return False
    return True


@dataclass
class Verdict:
    """The end state of a fault test: what was lost, what was doubled, and whether the view is a replay."""

    expected: int
    lost: list[str]
    doubled: list[str]
    view_equals_replay: bool
    differences: list[str]
    lost_events: int = 0
    """Distinct events lost (``lost`` has one line per view an event is missing from)."""

    def record(self, figures: Any, test: str) -> None:
        figures.add_events(test, expected=self.expected, lost=self.lost_events, doubled=len(self.doubled))

    def problems(self) -> list[str]:
        return [*self.lost[:10], *self.doubled[:10], *self.differences[:10]]


def verify(
    env: dict[str, str], view_engine: Engine, accepted_ids: set[str], tmp: Path,
    services: tuple[str, ...] = ("payments", "ledger"),
) -> Verdict:
    """Every 201 stored once; every stored event on its topic and applied once; the view equal to a
    projection replayed from scratch; each municipality's spent total equal to its store's sum."""
    settings = load_settings(env)
    counted = tally(env, view_engine, services, accepted_ids)
    doubled = list(counted.doubled)
    ledger_events = stored_envelopes(settings, "ledger")
    references = Counter(e["payload"]["reference"] for e in ledger_events if e["event_type"] == "ExpenditureRecorded")
    doubled += [f"posting {ref} stored {n} times" for ref, n in references.items() if n > 1]
    imports = Counter(ref.rsplit("-", 1)[0] for ref in references if ref.startswith("imp-"))
    doubled += [f"import {tag} stored {n} rows, not 3" for tag, n in imports.items() if n > 3]
    half_written = [f"import {tag} stored {n} of its 3 rows" for tag, n in imports.items() if n < 3]
    payments_events = stored_envelopes(settings, "payments")
    # The loads pay each grant and each library a unique amount per payment: an amount twice is a payment twice.
    advances = Counter((e["stream_id"], e["payload"]["amount_cents"]) for e in payments_events
                       if e["event_type"] == "AdvancePaid")
    doubled += [f"{stream}: advance of {amount} cents stored {n} times" for (stream, amount), n in advances.items()
                if n > 1]
    if "bridge" in services:
        paid = Counter((e["stream_id"], e["payload"]["amount_cents"]) for e in stored_envelopes(settings, "bridge")
                       if e["event_type"] == "BridgePaymentMade")
        doubled += [f"{stream}: bridge payment of {amount} cents stored {n} times"
                    for (stream, amount), n in paid.items() if n > 1]
    live = journal_sums(view_engine)
    replay, replayed_events = replay_from_scratch(env, tmp, counted.expected)
    replayed = journal_sums(replay)
    replay.dispose()
    if replayed_events != counted.expected:
        half_written.append(f"the replay applied {replayed_events} events, the stores hold {counted.expected}")
    differences = half_written + [f"{key}: live {live.get(key)} replay {replayed.get(key)}"
                   for key in sorted(set(live) | set(replayed), key=str) if live.get(key) != replayed.get(key)]
    spent: dict[str, int] = {}
    for event in ledger_events:
        if event["event_type"] == "ExpenditureRecorded":
            code = event["payload"]["municipality_code"]
            spent[code] = spent.get(code, 0) + event["payload"]["amount_cents"]
    for code, cents in spent.items():
        in_view = sum(v[0] for k, v in live.items() if k[0] == "spent" and k[1] == code)
        if in_view != cents:
            differences.append(f"{code}: spent {in_view} in the view, {cents} in the store")
    return Verdict(counted.expected, counted.lost, doubled, not differences, differences, len(counted.lost_ids))
