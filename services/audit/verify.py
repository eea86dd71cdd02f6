"""Reads each side's whole history into ``Chains``: every event store and every topic.

``verify`` reports the first broken link of every stream on every side; ``reconcile`` and the
checkpoints compare what these scans hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.audit.chain import Break, Chains
from services.audit.sources import (
    TopicReader,
    audit_kafka_config,
    open_store,
    relay_position,
    stored_events,
    topic_of_service,
)
from services.common.config import Settings
from services.common.definition import SERVICE_NAMES


def store_side(service: str) -> str:
    return f"store {service}"


def topic_side(topic: str) -> str:
    return f"topic {topic}"


@dataclass
class StoreScan:
    service: str
    chains: Chains
    max_notification_id: int
    relay_position: int


def scan_store(settings: Settings, service: str) -> StoreScan:
    application = open_store(settings, service)
    try:
        chains = Chains(store_side(service))
        last = 0
        for stored in stored_events(application):
            chains.add_envelope(stored.envelope, f"notification {stored.notification_id}", stored.notification_id)
            last = stored.notification_id
        position = relay_position(application, topic_of_service(settings, service))
        return StoreScan(service, chains, last, position)
    finally:
        application.close()


@dataclass
class TopicScan:
    topic: str
    chains: Chains
    offsets: dict[str, int]
    missing: bool = False


def scan_topics(settings: Settings, topics: list[str]) -> dict[str, TopicScan]:
    reader = TopicReader(audit_kafka_config(settings), topics)
    try:
        scans = {topic: TopicScan(topic, Chains(topic_side(topic)), {}) for topic in topics}
        for topic in reader.missing_topics:
            scans[topic].missing = True
        for topic, partitions in reader.offsets().items():
            scans[topic].offsets = partitions
        for tp, records in reader.batches():
            chains = scans[tp.topic].chains
            for record in records:
                chains.add_message(record.value, f"partition {tp.partition} offset {record.offset}", record.offset)
        return scans
    finally:
        reader.close()


@dataclass
class VerifyReport:
    breaks: list[Break] = field(default_factory=list)
    checked: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "breaks": [b.as_dict() for b in self.breaks],
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        found = [f"{side}: {c['events']} events in {c['streams']} streams" for side, c in self.checked.items()]
        found += [f"NOTE {n}" for n in self.notes]
        found += [f"BROKEN {b.describe()}" for b in self.breaks]
        found.append("verified: every chain is intact" if self.ok else f"{len(self.breaks)} broken chain(s)")
        return found


def _checked(report: VerifyReport, chains: Chains) -> None:
    report.checked[chains.side] = {"events": chains.events, "streams": len(chains.links), "copies": chains.copies}
    report.breaks.extend(chains.breaks())


def verify(
    settings: Settings,
    *,
    services: tuple[str, ...] = SERVICE_NAMES,
    stores: bool = True,
    topics: bool = True,
) -> VerifyReport:
    report = VerifyReport()
    if stores:
        for service in services:
            _checked(report, scan_store(settings, service).chains)
    if topics:
        for scan in scan_topics(settings, [topic_of_service(settings, s) for s in services]).values():
            if scan.missing:
                report.notes.append(f"topic {scan.topic} does not exist")
            _checked(report, scan.chains)
    return report
