"""Each service's event store against its topic: every stream, event by event.

Per stream: the events each side holds (re-sent copies on the topic count once), the last
position and the chain head. Anything held by one side only, or held differently, is named by
stream, position and ``event_id``, with where it is (notification id; partition and offset).
An event stored after the relay's acknowledged position is *not yet published* (relay lag), not
missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.audit.chain import Chains, Link
from services.audit.sources import topic_of_service
from services.audit.verify import StoreScan, TopicScan, scan_store, scan_topics
from services.common.config import Settings
from services.common.definition import SERVICE_NAMES


@dataclass(frozen=True)
class Difference:
    service: str
    stream_id: str
    position: int | None
    problem: str
    detail: str

    def describe(self) -> str:
        at = f" position {self.position}" if self.position is not None else ""
        return f"{self.service}: stream {self.stream_id}{at}: {self.problem} ({self.detail})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "stream_id": self.stream_id,
            "position": self.position,
            "problem": self.problem,
            "detail": self.detail,
        }


@dataclass
class ServiceSummary:
    service: str
    topic: str
    store_events: int
    topic_events: int
    store_streams: int
    topic_streams: int
    relay_position: int
    not_yet_published: int = 0


@dataclass
class ReconcileReport:
    differences: list[Difference] = field(default_factory=list)
    summaries: list[ServiceSummary] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "services": [s.__dict__ for s in self.summaries],
            "differences": [d.as_dict() for d in self.differences],
        }

    def lines(self) -> list[str]:
        found = [
            f"{s.service}: store {s.store_events} events in {s.store_streams} streams; topic {s.topic} "
            f"{s.topic_events} events in {s.topic_streams} streams; {s.not_yet_published} not yet published "
            f"(relay at notification {s.relay_position})"
            for s in self.summaries
        ]
        found += [f"DIFFERENT {d.describe()}" for d in self.differences]
        found.append("reconciled: stores and topics hold the same history" if self.ok else (
            f"{len(self.differences)} difference(s)"
        ))
        return found


def _distinct(chains: Chains) -> int:
    return sum(len(stream) for stream in chains.links.values())


def compare(store: StoreScan, topic: TopicScan) -> tuple[ServiceSummary, list[Difference]]:
    service = store.service
    differences: list[Difference] = []
    summary = ServiceSummary(
        service, topic.topic, _distinct(store.chains), _distinct(topic.chains), len(store.chains.links),
        len(topic.chains.links), store.relay_position,
    )
    if topic.missing:
        differences.append(Difference(service, "*", None, "topic does not exist", topic.topic))

    def published(link: Link) -> bool:
        return link.source_id <= store.relay_position

    for stream_id in sorted(set(store.chains.links) | set(topic.chains.links)):
        stored = store.chains.links.get(stream_id, {})
        sent = topic.chains.links.get(stream_id, {})
        for position in sorted(set(stored) | set(sent)):
            a, b = stored.get(position), sent.get(position)
            if a is not None and b is None:
                if not published(a):
                    summary.not_yet_published += 1
                    continue
                differences.append(
                    Difference(service, stream_id, position, "missing on the topic",
                               f"event {a.event_id}, stored at {a.where}, hash {a.hash}")
                )
            elif a is None and b is not None:
                differences.append(
                    Difference(service, stream_id, position, "missing in the store",
                               f"event {b.event_id} on {topic.topic} {b.where}, hash {b.hash}")
                )
            elif a is not None and b is not None and (a.event_id, a.hash, a.prev_hash) != (
                b.event_id, b.hash, b.prev_hash
            ):
                differences.append(
                    Difference(service, stream_id, position, "different on the two sides",
                               f"store {a.where} event {a.event_id} hash {a.hash}; topic {b.where} "
                               f"event {b.event_id} hash {b.hash}")
                )
    for fork in topic.chains.forks.values():
        differences.append(
            Difference(service, fork.stream_id, fork.position, "two different events at one position on the topic",
                       fork.where)
        )
    return summary, differences


def reconcile(settings: Settings, *, services: tuple[str, ...] = SERVICE_NAMES) -> ReconcileReport:
    report = ReconcileReport()
    topics = scan_topics(settings, [topic_of_service(settings, s) for s in services])
    for service in services:
        store = scan_store(settings, service)
        summary, differences = compare(store, topics[topic_of_service(settings, service)])
        report.summaries.append(summary)
        report.differences.extend(differences)
    return report
