"""Reads each side's whole history into ``Chains``: every event store and every topic.

``verify`` reports the first broken link of every stream on every side; ``reconcile`` and the
checkpoints compare what these scans hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from contracts.envelope import ContractViolation
from contracts.provenance import ProvenanceCheck
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
    refused: list[Break] = field(default_factory=list)
    """Messages not sealed by the topic's owner (only with a provenance check)."""


def _provenance_break(
    provenance: ProvenanceCheck, side: str, topic: str, record: Any, where: str
) -> Break | None:
    """A break naming the message when its seal does not prove it; None when it does (or it is no envelope:
    the chain check reports that)."""
    try:
        envelope = json.loads(record.value) if record.value is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("hash"), str):
        return None
    try:
        provenance.check(topic, envelope, record.headers)
    except ContractViolation as violation:
        position = envelope.get("stream_position")
        return Break(
            side, str(envelope.get("stream_id", "?")), position if type(position) is int else 0,
            f"event {envelope.get('event_id')} refused, {violation.reason}", None, None, where,
        )
    return None


def scan_topics(
    settings: Settings,
    topics: list[str],
    provenance: ProvenanceCheck | None = None,
    on_record: Callable[[TopicPartition, Any], None] | None = None,
) -> dict[str, TopicScan]:
    """``on_record``: also given every message read, in each partition's order (`ido recover store` keeps
    them to re-record, so what it writes is exactly what this check judged)."""
    reader = TopicReader(audit_kafka_config(settings), topics)
    try:
        scans = {topic: TopicScan(topic, Chains(topic_side(topic)), {}) for topic in topics}
        for topic in reader.missing_topics:
            scans[topic].missing = True
        for topic, partitions in reader.offsets().items():
            scans[topic].offsets = partitions
        for tp, records in reader.batches():
            scan = scans[tp.topic]
            chains = scan.chains
            for record in records:
                where = f"partition {tp.partition} offset {record.offset}"
                chains.add_message(record.value, where, record.offset)
                if on_record is not None:
                    on_record(tp, record)
                if provenance is not None:
                    refused = _provenance_break(provenance, chains.side, tp.topic, record, where)
                    if refused is not None:
                        scan.refused.append(refused)
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
        from services.common.signing import build_provenance_check

        provenance = build_provenance_check(settings)
        for scan in scan_topics(settings, [topic_of_service(settings, s) for s in services], provenance).values():
            if scan.missing:
                report.notes.append(f"topic {scan.topic} does not exist")
            _checked(report, scan.chains)
            report.breaks.extend(scan.refused)
    return report
