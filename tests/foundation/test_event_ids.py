"""Event ids are UUIDs of version 7, ordered by the time they were made (issue 17, eighteenth round): the views'
indexes keyed by event id then grow at their end. What this must not cost: a contract check that refuses them,
an id that repeats, or a clock in the id that runs ahead of the event's own ``recorded_at``."""

from __future__ import annotations

import time
from collections import Counter
from uuid import UUID

import orjson

from contracts.canonical import parse_utc
from contracts.message_check import MessageCheck
from services.common.domain.chained import envelope_of
from services.common.domain.event_ids import new_event_id
from tests.ledger.test_domain import record


def _unix_ms(event_id: str) -> int:
    return UUID(event_id).int >> 80  # RFC 9562: the first 48 bits are the Unix time in milliseconds


def test_ids_are_version_7_and_carry_the_time_they_were_made() -> None:
    before_ms = time.time_ns() // 1_000_000
    event_id = new_event_id()
    after_ms = time.time_ns() // 1_000_000
    parsed = UUID(event_id)
    assert (parsed.version, parsed.variant) == (7, "specified in RFC 4122")
    assert str(parsed) == event_id  # the canonical lower-case text the envelope carries
    assert before_ms <= _unix_ms(event_id) <= after_ms


def test_ids_made_in_a_row_increase_as_text_even_within_one_millisecond_and_never_repeat() -> None:
    started_ms = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(20_000)]
    ended_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # the order of the views' indexes: text
    by_ms = Counter(_unix_ms(event_id) for event_id in ids)
    assert max(by_ms.values()) > 1  # several ids in one millisecond were made (else the test shows nothing)
    # the counter within a millisecond does not push the time on (the pure-Python uuid6 package's uuid7 did)
    assert started_ms <= min(by_ms) and max(by_ms) <= ended_ms


def test_a_recorded_event_gets_such_an_id_and_its_message_passes_the_contract_check() -> None:
    expenditure = record()
    (event,) = expenditure.collect_events()
    envelope = envelope_of(event)
    assert UUID(envelope["event_id"]).version == 7
    recorded_ms = int(parse_utc(envelope["recorded_at"]).timestamp() * 1000)
    assert abs(_unix_ms(envelope["event_id"]) - recorded_ms) <= 1_000
    parsed, _fast = MessageCheck().judge(orjson.dumps(envelope))
    assert parsed["event_id"] == envelope["event_id"]
