"""The relay's message of one stored event: partition key, envelope, record MAC and the envelope's bytes.

The same as ``recorded_event`` followed by ``canonical_json``, only cheaper for the events the services
store: the relay decodes and encodes every event it publishes (bench row 2), and the standard library's
decoder with eventsourcing's object hook, ``format_utc`` and the plain-tree walks of the encoder were
~30 us of an event's ~100. Anything the fast path is not sure of takes that slower path instead, so the
bytes are always exactly those (tests/foundation/test_relay_message.py compares both on every event type).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder

from contracts.canonical import canonical_json, format_utc
from services.common.domain.chained import METADATA_FIELDS, recorded_event

RelayMessage = tuple[str, dict[str, Any], str | None, bytes]
"""(partition key, envelope, record MAC or None, canonical JSON of the envelope)."""

_TYPED_VALUE = b'"_type_"'
"""How eventsourcing's JSONTranscoder marks a value of a registered type (a datetime, UUID, Decimal). Inside a
JSON string the quotes are escaped, so these bytes occur only where such a value was written."""

_UTC_MICROSECONDS = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+00:00")
"""``datetime.isoformat()`` of a UTC time with microseconds (eventsourcing's timestamps): its ``format_utc``
is its first 26 characters and a ``Z`` (a year below 1000 would be spelt differently by ``strftime``)."""


def relay_message(mapper: Any, stored_event: Any) -> RelayMessage:
    """What the relay publishes for ``stored_event``: ``recorded_event`` and ``canonical_json`` of its envelope."""
    fast = _plain_message(mapper, stored_event)
    if fast is not None:
        return fast
    key, envelope, mac = recorded_event(mapper, stored_event)
    return key, envelope, mac, canonical_json(envelope)


def _plain_message(mapper: Any, stored_event: Any) -> RelayMessage | None:
    """The message when the stored state is plain JSON apart from eventsourcing's own timestamp; else None."""
    state = stored_event.state
    topic = stored_event.topic
    position = stored_event.originator_version
    if (
        mapper.cipher
        or mapper.compressor
        or type(mapper.transcoder) is not JSONTranscoder
        or type(mapper.transcoder.names.get("datetime_iso")) is not DatetimeAsISO
        or not topic.startswith("ido:")
        or type(position) is not int
        or state.count(_TYPED_VALUE) != 1
    ):
        return None
    try:
        fields = orjson.loads(state)
    except orjson.JSONDecodeError:
        return None
    stamp = fields.get("timestamp") if type(fields) is dict else None
    if type(stamp) is not dict or len(stamp) != 2 or stamp.get("_type_") != "datetime_iso":
        return None
    recorded_at = _utc_text(stamp.get("_data_"))
    # orjson reads an integer beyond 64 bits as a float, where the transcoder keeps it exact: any float
    # (a real one too) leaves the event to the slow path, which also gives it canonical_json's own rule.
    if recorded_at is None or not _no_float(fields.values()):
        return None
    envelope = {
        "event_id": fields["event_id"],
        "event_type": topic[4:],
        "schema_version": fields.pop("class_version", 1),
        "stream_id": fields["stream_id"],
        "stream_position": position,
        "occurred_at": fields["occurred_at"],
        "recorded_at": recorded_at,
        "producer": fields["producer"],
        "payload": {k: v for k, v in fields.items() if k not in METADATA_FIELDS},
        "prev_hash": fields["prev_hash"],
        "hash": fields["hash"],
    }
    try:
        # canonical_json's own encoding of a plain tree (contracts/canonical.py), its walk already done above
        value = orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None
    return fields["partition_key"], envelope, fields.get("record_mac"), value


def _utc_text(data: Any) -> str | None:
    """``format_utc`` of the stored timestamp ``data`` (its ISO text), without its ``strftime``."""
    if type(data) is not str:
        return None
    moment = datetime.fromisoformat(data)  # as the transcoder decodes it: invalid text raises the same way
    if _UTC_MICROSECONDS.fullmatch(data):
        return data[:26] + "Z"
    return format_utc(moment)


def _no_float(values: Iterable[Any]) -> bool:
    """True when no value (at any depth) of what orjson decoded is a float."""
    for value in values:
        kind = type(value)
        if kind is float:
            return False
        if kind is dict:
            if not _no_float(value.values()):
                return False
        elif kind is list and not _no_float(value):
            return False
    return True
