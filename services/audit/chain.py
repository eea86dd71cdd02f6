"""The hash chain of every stream, checked from what a side (a topic or an event store) holds.

Links are collected per stream and position, then each stream is walked from position 1: every
event's hash must be the SHA-256 of its own content (``contracts.canonical.compute_hash``), its
``prev_hash`` the hash of the event before it (64 zeros for the first), and no position may be
missing or taken by two different events. The first broken link of each stream is reported.
A re-sent copy of an event (same ``event_id``, same content) is not a break.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from contracts.canonical import GENESIS_HASH, compute_hash


class Link(NamedTuple):
    position: int
    event_id: str
    prev_hash: str
    hash: str
    computed_hash: str
    where: str
    source_id: int
    """The notification id (store) or the offset (topic)."""


@dataclass(frozen=True)
class Break:
    side: str
    stream_id: str
    position: int
    problem: str
    expected: str | None
    found: str | None
    where: str

    def describe(self) -> str:
        return (
            f"{self.side}: stream {self.stream_id} position {self.position} ({self.where}): {self.problem}; "
            f"expected {self.expected}, found {self.found}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "stream_id": self.stream_id,
            "position": self.position,
            "problem": self.problem,
            "expected": self.expected,
            "found": self.found,
            "where": self.where,
        }


@dataclass
class Chains:
    """The links one side holds, and what their check found."""

    side: str
    links: dict[str, dict[int, Link]] = field(default_factory=dict)
    forks: dict[str, Break] = field(default_factory=dict)
    unreadable: list[Break] = field(default_factory=list)
    events: int = 0
    copies: int = 0

    def add_envelope(self, envelope: Any, where: str, source_id: int) -> None:
        self.events += 1
        try:
            stream_id = envelope["stream_id"]
            position = envelope["stream_position"]
            link = Link(
                position, envelope["event_id"], envelope["prev_hash"], envelope["hash"], compute_hash(envelope),
                where, source_id,
            )
            if not isinstance(stream_id, str) or type(position) is not int:
                raise TypeError("stream_id or stream_position of the wrong type")
        except (KeyError, TypeError, ValueError) as error:
            self.unreadable.append(Break(self.side, "?", 0, f"not an envelope ({error})", None, None, where))
            return
        stream = self.links.setdefault(stream_id, {})
        seen = stream.get(position)
        if seen is None:
            stream[position] = link
            return
        if (seen.event_id, seen.hash, seen.computed_hash) == (link.event_id, link.hash, link.computed_hash):
            self.copies += 1  # re-sent by the relay
            return
        if stream_id in self.forks:
            return
        if link.computed_hash != link.hash:  # a copy altered after it was hashed
            self.forks[stream_id] = Break(
                self.side, stream_id, position, "hash does not match the event's content", link.computed_hash,
                link.hash, where,
            )
        else:
            self.forks[stream_id] = Break(
                self.side, stream_id, position, "two different events at one position", seen.hash, link.hash,
                f"{seen.where} and {where}",
            )

    def add_message(self, value: bytes | None, where: str, offset: int) -> None:
        try:
            envelope = json.loads(value) if value is not None else None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            self.events += 1
            self.unreadable.append(Break(self.side, "?", 0, f"not JSON ({error})", None, None, where))
            return
        if not isinstance(envelope, dict):
            self.events += 1
            self.unreadable.append(Break(self.side, "?", 0, "not a JSON object", None, None, where))
            return
        self.add_envelope(envelope, where, offset)

    def first_break(self, stream_id: str) -> Break | None:
        """The first broken link of the stream walking from position 1, or a fork found earlier."""
        stream = self.links[stream_id]
        expected_prev = GENESIS_HASH
        found: Break | None = None
        for position in range(1, max(stream) + 1):
            link = stream.get(position)
            if link is None:
                later = min(p for p in stream if p > position)
                found = Break(
                    self.side, stream_id, position, "event missing", f"position {position}",
                    f"next is position {later}", stream[later].where,
                )
                break
            if link.computed_hash != link.hash:
                found = Break(
                    self.side, stream_id, position, "hash does not match the event's content",
                    link.computed_hash, link.hash, link.where,
                )
                break
            if link.prev_hash != expected_prev:
                found = Break(
                    self.side, stream_id, position, "prev_hash is not the hash of the event before",
                    expected_prev, link.prev_hash, link.where,
                )
                break
            expected_prev = link.hash
        fork = self.forks.get(stream_id)
        if fork is not None and (found is None or fork.position < found.position):
            return fork
        return found

    def breaks(self) -> list[Break]:
        found = list(self.unreadable)
        for stream_id in sorted(self.links):
            first = self.first_break(stream_id)
            if first is not None:
                found.append(first)
        return found

    def intact_through(self, stream_id: str, position: int) -> Break | None:
        """None when positions 1..``position`` are all there and chained; else the first break."""
        first = self.first_break(stream_id) if stream_id in self.links else None
        if first is not None and first.position <= position:
            return first
        if stream_id not in self.links or position not in self.links[stream_id]:
            return Break(
                self.side, stream_id, position, "event missing", f"position {position}",
                f"last is position {max(self.links.get(stream_id, {0: None}))}", "",
            )
        return None

    def head(self, stream_id: str) -> Link:
        stream = self.links[stream_id]
        return stream[max(stream)]
