"""BalancesProjection: the three topics -> the ledger's read model, applied by the ProjectionRunner.

Every money movement becomes signed journal rows (see application/view.py). Events that *set* an
amount (a frame, an award, a settlement, a bridging grant or account) are journalled as the
difference to what was set before, so sums stay right through corrections and amendments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from contracts.registry import contract_for
from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.common.consumer import Rejected
from services.ledger.application.view import (
    PROJECTION_NAME,
    closings,
    journal,
    libraries,
    municipalities,
    view_metadata,
)

PRODUCER_OF_TOPIC = {
    GRANTS.name: GRANTS.producer,
    BRIDGE.name: BRIDGE.producer,
    EXPENDITURES.name: EXPENDITURES.producer,
}
GRANT_KINDS = ("awarded", "advance_paid", "settled", "reclaim_issued", "reclaim_received")


def _day(value: str) -> date:
    return date.fromisoformat(value[:10])


class BalancesProjection:
    name = PROJECTION_NAME

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[[Connection, dict[str, Any]], None]] = {
            "GrantFrameSet": self._grant_frame,
            "GrantFrameAmended": self._grant_frame,
            "GrantAwarded": self._awarded,
            "AdvancePaid": self._advance_paid,
            "GrantSettled": self._settled,
            "ReclaimIssued": self._reclaim_issued,
            "ReclaimReceived": self._reclaim_received,
            "GrantTransferred": self._transferred,
            "BridgeFrameSet": self._bridge_frame,
            "BridgeFrameAmended": self._bridge_frame,
            "LibraryRegistered": self._library,
            "BridgeGrantSet": self._bridge_grant,
            "BridgePaymentMade": self._bridge_paid,
            "BridgeAccountSubmitted": self._bridge_account,
            "BridgeReclaimIssued": self._bridge_reclaim,
            "ExpenditureRecorded": self._expenditure_recorded,
            "ExpenditureReversed": self._expenditure_reversed,
            "YearClosed": self._year_closed,
        }

    def create_tables(self, engine: Engine) -> None:
        view_metadata.create_all(engine)

    def apply(self, connection: Connection, topic: str, envelope: dict[str, Any]) -> None:
        event_type = envelope["event_type"]
        contract = contract_for(event_type, envelope["schema_version"])
        if not topic.endswith(contract.topic):
            raise Rejected(f"{event_type} belongs on {contract.topic}, not on {topic}")
        producer = PRODUCER_OF_TOPIC.get(contract.topic)
        if producer is not None and envelope["producer"] != producer:
            raise Rejected(f"{event_type} on {contract.topic} must come from {producer}, not {envelope['producer']}")
        handler = self._handlers.get(event_type)
        if handler is not None:  # other events (e.g. BridgeCommitmentChanged) change no balance
            handler(connection, envelope)

    # -- helpers -------------------------------------------------------------------------------

    def _journal(self, connection: Connection, envelope: dict[str, Any], *rows: dict[str, Any]) -> None:
        for line, row in enumerate(rows, start=1):
            if row["amount_cents"] == 0 and line > 1:
                continue
            connection.execute(
                insert(journal).values(
                    event_id=envelope["event_id"],
                    line=line,
                    event_type=envelope["event_type"],
                    recorded_at=envelope["recorded_at"],
                    stream_id=envelope["stream_id"],
                    **row,
                )
            )

    def _current(self, connection: Connection, kind: str, **where: Any) -> int:
        query = select(func.coalesce(func.sum(journal.c.amount_cents), 0)).where(journal.c.kind == kind)
        for column, value in where.items():
            query = query.where(journal.c[column] == value)
        return int(connection.execute(query).scalar_one())

    def _upsert_name(self, connection: Connection, table: Any, key: str, key_value: str, name: str) -> None:
        column = table.c[key]
        if connection.execute(select(column).where(column == key_value)).first() is None:
            connection.execute(insert(table).values({key: key_value, "name": name}))
        else:
            connection.execute(update(table).where(column == key_value).values(name=name))

    # -- grants --------------------------------------------------------------------------------

    def _grant_frame(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        delta = p["frame_cents"] - self._current(connection, "grant_frame", year=p["year"])
        self._journal(
            connection,
            envelope,
            {"kind": "grant_frame", "year": p["year"], "amount_cents": delta, "booked_on": _day(p["decided_on"])},
        )

    def _grant_row(self, p: dict[str, Any], kind: str, amount: int, day: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "municipality_code": p["municipality_code"],
            "grant_id": p["grant_id"],
            "year": p["year"],
            "amount_cents": amount,
            "booked_on": _day(day),
        }

    def _awarded(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        self._upsert_name(
            connection, municipalities, "municipality_code", p["municipality_code"], p["municipality_name"]
        )
        delta = p["amount_cents"] - self._current(connection, "awarded", grant_id=p["grant_id"])
        self._journal(connection, envelope, self._grant_row(p, "awarded", delta, p["awarded_on"]))

    def _advance_paid(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        self._journal(connection, envelope, self._grant_row(p, "advance_paid", p["amount_cents"], p["paid_on"]))

    def _settled(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        delta = p["settled_cents"] - self._current(connection, "settled", grant_id=p["grant_id"])
        self._journal(connection, envelope, self._grant_row(p, "settled", delta, p["settled_on"]))

    def _reclaim_issued(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        self._journal(connection, envelope, self._grant_row(p, "reclaim_issued", p["amount_cents"], p["issued_on"]))

    def _reclaim_received(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        self._journal(connection, envelope, self._grant_row(p, "reclaim_received", p["amount_cents"], p["received_on"]))

    def _transferred(self, connection: Connection, envelope: dict[str, Any]) -> None:
        """The grant's amounts so far move from the merged municipality to its successor."""
        p = envelope["payload"]
        old, new = p["from_municipality_code"], p["municipality_code"]
        rows: list[dict[str, Any]] = []
        for kind in GRANT_KINDS:
            moved = self._current(connection, kind, grant_id=p["grant_id"], municipality_code=old)
            if moved:
                rows.append(self._grant_row({**p, "municipality_code": old}, kind, -moved, p["effective_on"]))
                rows.append(self._grant_row({**p, "municipality_code": new}, kind, moved, p["effective_on"]))
        for line, row in enumerate(rows, start=1):
            connection.execute(
                insert(journal).values(
                    event_id=envelope["event_id"],
                    line=line,
                    event_type=envelope["event_type"],
                    recorded_at=envelope["recorded_at"],
                    stream_id=envelope["stream_id"],
                    **row,
                )
            )

    # -- bridge --------------------------------------------------------------------------------

    def _bridge_frame(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        delta = p["frame_cents"] - self._current(connection, "bridge_frame")
        self._journal(
            connection,
            envelope,
            {"kind": "bridge_frame", "amount_cents": delta, "booked_on": _day(envelope["occurred_at"])},
        )

    def _library(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        self._upsert_name(connection, libraries, "library_id", p["library_id"], p["name"])

    def _bridge_row(self, library_id: str, kind: str, amount: int, day: str) -> dict[str, Any]:
        return {"kind": kind, "library_id": library_id, "amount_cents": amount, "booked_on": _day(day)}

    def _bridge_grant(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        delta = p["amount_cents"] - self._current(connection, "bridge_grant", library_id=p["library_id"])
        self._journal(
            connection, envelope, self._bridge_row(p["library_id"], "bridge_grant", delta, envelope["occurred_at"])
        )

    def _bridge_paid(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        self._journal(
            connection, envelope, self._bridge_row(p["library_id"], "bridge_paid", p["amount_cents"], p["paid_on"])
        )

    def _bridge_account(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        delta = p["spent_cents"] - self._current(connection, "bridge_settled", library_id=p["library_id"])
        self._journal(
            connection, envelope, self._bridge_row(p["library_id"], "bridge_settled", delta, p["submitted_on"])
        )

    def _bridge_reclaim(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        self._journal(
            connection, envelope, self._bridge_row(p["library_id"], "bridge_reclaim", p["amount_cents"], p["issued_on"])
        )

    # -- expenditures --------------------------------------------------------------------------

    def _expenditure_recorded(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        self._journal(
            connection,
            envelope,
            {
                "kind": "spent",
                "municipality_code": p["municipality_code"],
                "year": p["grant_year"],
                "category": p["category"],
                "amount_cents": p["amount_cents"],
                "booked_on": _day(p["booked_on"]),
                "expenditure_id": p["expenditure_id"],
                "counterparty_id": p["counterparty"]["id"],
                "counterparty_name": p["counterparty"]["name"],
                "reference": p["reference"],
                "description": p["description"],
            },
        )

    def _expenditure_reversed(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        original = connection.execute(
            select(journal).where(journal.c.event_id == p["reverses_event_id"], journal.c.line == 1)
        ).first()
        if original is not None and (
            original.amount_cents != p["amount_cents"] or original.municipality_code != p["municipality_code"]
        ):
            raise Rejected(f"the reversal does not match the expenditure it reverses ({p['reverses_event_id']})")
        self._journal(
            connection,
            envelope,
            {
                "kind": "spent",
                "municipality_code": p["municipality_code"],
                "year": p["grant_year"],
                "category": p["category"],
                "amount_cents": -p["amount_cents"],
                "booked_on": _day(p["booked_on"]),
                "expenditure_id": p["expenditure_id"],
                "reverses_event_id": p["reverses_event_id"],
                "description": p["reason"],
                "counterparty_id": original.counterparty_id if original is not None else None,
                "counterparty_name": original.counterparty_name if original is not None else None,
                "reference": original.reference if original is not None else None,
            },
        )

    def _year_closed(self, connection: Connection, envelope: dict[str, Any]) -> None:
        p = envelope["payload"]
        exists = connection.execute(
            select(closings.c.event_id).where(
                closings.c.municipality_code == p["municipality_code"], closings.c.year == p["grant_year"]
            )
        ).first()
        if exists is not None:
            raise Rejected(f"the year {p['grant_year']} of {p['municipality_code']} was closed before")
        connection.execute(
            insert(closings).values(
                municipality_code=p["municipality_code"],
                year=p["grant_year"],
                event_id=envelope["event_id"],
                closed_on=_day(p["closed_on"]),
                closed_by=p["closed_by"],
                final_account=p["final_account"],
                recorded_at=envelope["recorded_at"],
            )
        )
