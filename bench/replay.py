"""Row 4's replay, behind one adapter function: ``replay_to_balances``.

When ``services.audit.replay.replay_topics`` (``ido audit replay``) imports, the adapter calls it;
otherwise it runs ``bench_replay``, a stand-in written here: it reads every partition of the
topics from the beginning, checks each stream's hash chain (recomputing every hash) and sums the
balances per (municipality, year, kind) in memory. ``raw_consume`` is the reference: the same
consumer, the same topics, the bytes only counted.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from contracts.canonical import GENESIS_HASH, compute_hash
from services.common.config import Settings


@dataclass
class ReplayResult:
    events: int
    balances: int
    implementation: str
    chain_breaks: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


def _consumer(bootstrap: str, topics: Sequence[str]) -> tuple[KafkaConsumer, list[TopicPartition]]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, client_id="bench-replay",
        max_poll_records=2000, fetch_max_bytes=50 * 1024 * 1024, max_partition_fetch_bytes=10 * 1024 * 1024,
    )
    partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer, partitions


def read_all(bootstrap: str, topics: Sequence[str]) -> Iterator[Any]:
    """Every message of the topics, partition by partition in offset order, up to their end now."""
    consumer, partitions = _consumer(bootstrap, topics)
    try:
        end = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                yield from batch
                if batch[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()


def raw_consume(bootstrap: str, topics: Sequence[str]) -> int:
    """The reference: read the same topics to their end, touching only the bytes."""
    count = 0
    size = 0
    for message in read_all(bootstrap, topics):
        count += 1
        size += len(message.value)
    return count


SET_KINDS = {"GrantAwarded": ("awarded", "amount_cents"), "GrantSettled": ("settled", "settled_cents")}
ADD_KINDS = {
    "AdvancePaid": "advance_paid",
    "ReclaimIssued": "reclaim_issued",
    "ReclaimReceived": "reclaim_received",
}


def bench_replay(bootstrap: str, topics: Sequence[str]) -> ReplayResult:
    """The stand-in replay: chains checked, balances summed, all in memory (memory ~ balances)."""
    heads: dict[str, tuple[int, str]] = {}
    balances: dict[tuple[str, int], dict[str, int]] = {}
    set_values: dict[tuple[str, str], int] = {}
    breaks = 0
    events = 0
    for message in read_all(bootstrap, topics):
        envelope = json.loads(message.value)
        events += 1
        stream = envelope["stream_id"]
        position, head = heads.get(stream, (0, GENESIS_HASH))
        if (
            envelope["stream_position"] != position + 1
            or envelope["prev_hash"] != head
            or compute_hash(envelope) != envelope["hash"]
        ):
            breaks += 1
        heads[stream] = (envelope["stream_position"], envelope["hash"])
        event_type = envelope["event_type"]
        p = envelope["payload"]
        if event_type in SET_KINDS:
            kind, amount_field = SET_KINDS[event_type]
            book = balances.setdefault((p["municipality_code"], p["year"]), {})
            previous = set_values.get((kind, p["grant_id"]), 0)
            set_values[(kind, p["grant_id"])] = p[amount_field]
            book[kind] = book.get(kind, 0) + p[amount_field] - previous
        elif event_type in ADD_KINDS:
            book = balances.setdefault((p["municipality_code"], p["year"]), {})
            book[ADD_KINDS[event_type]] = book.get(ADD_KINDS[event_type], 0) + p["amount_cents"]
        elif event_type == "ExpenditureRecorded":
            book = balances.setdefault((p["municipality_code"], p["grant_year"]), {})
            key = f"spent_{p['category']}"
            book[key] = book.get(key, 0) + p["amount_cents"]
        elif event_type == "ExpenditureReversed":
            book = balances.setdefault((p["municipality_code"], p["grant_year"]), {})
            key = f"spent_{p['category']}"
            book[key] = book.get(key, 0) - p["amount_cents"]
    # Stream heads are kept per stream: one small tuple per expenditure (see bench/README.md, row 6).
    return ReplayResult(events=events, balances=len(balances), implementation="bench.replay.bench_replay",
                        chain_breaks=breaks, detail={"streams": len(heads)})


def audit_replay() -> Callable[..., Any] | None:
    """``services.audit.replay.replay_topics`` (``ido audit replay``), if it has landed and imports."""
    try:
        module = importlib.import_module("services.audit.replay")
    except ImportError:
        return None
    function = getattr(module, "replay_topics", None)
    return function if callable(function) else None


def replay_to_balances(settings: Settings, topics: Sequence[str]) -> ReplayResult:
    """Row 4's project path: the auditor's in-memory replay when it exists, else ``bench_replay``."""
    function = audit_replay()
    if function is None:
        return bench_replay(settings.kafka_bootstrap_servers, topics)
    replay = function(settings, topics=list(topics))
    stats = replay.stats
    return ReplayResult(
        events=int(stats.messages),
        balances=len(replay.municipality_years()),
        implementation=f"{function.__module__}.{function.__qualname__}",
        chain_breaks=int(getattr(stats, "invalid", 0)),
        detail={"applied": stats.applied, "duplicates": stats.duplicates, "refused": stats.refused},
    )
