"""Stored events evolve with eventsourcing's class_version and upcasting; the recorded history,
its schema version and its hash chain stay exactly as they were written."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application
from marshmallow import fields

from contracts.canonical import compute_hash, format_utc
from contracts.events.fields import Payload
from contracts.registry import EventContract, register
from services.common.domain.chained import ChainedAggregate, build_envelope, recorded_envelope, stream_uuid


class MeterReadV1(Payload):
    reading = fields.Integer(strict=True, required=True)


class MeterReadV2(MeterReadV1):
    unit = fields.String(required=True)


register(EventContract("TestMeterRead", 1, "test.meters.v1", MeterReadV1, "tests only"))
register(EventContract("TestMeterRead", 2, "test.meters.v1", MeterReadV2, "tests only"))


class Meter(ChainedAggregate):
    """Version 2 of the meter: readings now carry a unit; old ones are upcast to cents."""

    TOPIC = "ido:TestMeter"
    PRODUCER = "toy"

    class Started(ChainedAggregate.Created):
        EVENT_TYPE = "TestMeterStarted"

        def apply(self, aggregate: Any) -> None:
            aggregate.readings = []

    class Read(ChainedAggregate.Event):
        EVENT_TYPE = "TestMeterRead"
        class_version = 2
        reading: int
        unit: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["unit"] = "cents"

        def apply(self, aggregate: Any) -> None:
            aggregate.readings.append((self.reading, self.unit))


def test_an_event_recorded_as_v1_loads_upcast_but_stays_v1_with_its_hash_on_the_wire() -> None:
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    meter = Meter._start(Meter.Started, stream_id="meter-1", partition_key="m1")
    app.save(meter)

    # An event written by the v1 code: no unit, no class_version in its stored state.
    v1_envelope = build_envelope(
        event_id="2b7c8a52-0f7e-4d8e-9d1a-3c3c3c3c3c3c", event_type="TestMeterRead", schema_version=1,
        stream_id="meter-1", stream_position=2, occurred_at=format_utc(meter.modified_on),
        recorded_at=format_utc(meter.modified_on), producer="toy", payload={"reading": 42},
        prev_hash=meter.chain_head,
    )
    v1_event = Meter.Read(
        originator_id=meter.id, originator_version=2, timestamp=meter.modified_on,
        event_id=v1_envelope["event_id"], stream_id="meter-1", partition_key="m1", producer="toy",
        occurred_at=v1_envelope["occurred_at"], prev_hash=meter.chain_head, hash=v1_envelope["hash"],
        reading=42, unit="",
    )
    stored = app.mapper.to_stored_event(v1_event)
    state = app.mapper.transcoder.decode(stored.state)
    del state["unit"], state["class_version"]
    app.recorder.insert_events([type(stored)(
        originator_id=stored.originator_id, originator_version=2, topic=stored.topic,
        state=app.mapper.transcoder.encode(state),
    )])

    loaded = app.repository.get(stream_uuid("meter-1"))
    assert loaded.readings == [(42, "cents")], "the v1 event is upcast when the aggregate loads"

    notifications = app.recorder.select_notifications(start=1, limit=10)
    key, wire = recorded_envelope(app.mapper, notifications[1])
    assert key == "m1"
    assert wire == v1_envelope, "on the wire the event is exactly what was recorded, as v1"
    assert compute_hash(wire) == wire["hash"]

    loaded._record(Meter.Read, reading=7, unit="kWh")
    app.save(loaded)
    _, new_wire = recorded_envelope(app.mapper, app.recorder.select_notifications(start=1, limit=10)[2])
    assert (new_wire["schema_version"], new_wire["payload"]) == (2, {"reading": 7, "unit": "kWh"})
    assert new_wire["prev_hash"] == wire["hash"] and compute_hash(new_wire) == new_wire["hash"]
