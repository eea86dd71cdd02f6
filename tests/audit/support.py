"""Histories for the audit tests: recorded through the real services, or generated at random."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, Table, create_engine, func, select, text, update

from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.bridge.application.app import BridgeApplication
from services.bridge.entrypoints.demo import load_demo_data as load_bridge_demo
from services.common.adapters.sql import create_sql_engine
from services.common.config import Giving360Settings, Settings
from services.common.consumer import consumer_offsets
from services.common.domain.chained import stream_uuid
from services.common.eventstore import build_application
from services.ledger.application.app import LedgerApplication
from services.ledger.entrypoints.projector import build_runner
from services.payments.application.app import PaymentsApplication
from tests.ledger.events import Streams
from tests.support.kafka_topics import publish_all

CODES = ("GM0363", "GM0344", "GM0599", "GM0014", "GM0772", "GM1948")
NAMES = {
    "GM0363": "Amsterdam", "GM0344": "Utrecht", "GM0599": "Rotterdam", "GM0014": "Groningen",
    "GM0772": "Eindhoven", "GM1948": "Meierijstad",
}
LIBRARY = "NL-KVK-41215098"
GIVING360_IDS = Giving360Settings(
    id_prefix="360G-test", funder_id="NL-OIN-99900000000000000001", bridge_funder_id="NL-KVK-99900002"
)
"""360Giving identifier settings of the right form for the tests, invented (999...): nobody's registered ids."""


def expenditure_body(amount_cents: int, booked_on: str, category: str = "library_funding", **extra: Any) -> dict:
    return {
        "grant_year": int(booked_on[:4]),
        "category": category,
        "amount_cents": amount_cents,
        "booked_on": date.fromisoformat(booked_on),
        "counterparty": {"id": LIBRARY, "name": "OBA (illustrative)"},
        "description": "illustrative",
        "reference": f"R-{uuid.uuid4().hex[:6]}",
        **extra,
    }


@dataclass
class Services:
    settings: Settings
    payments: PaymentsApplication
    bridge: BridgeApplication
    ledger: LedgerApplication
    expenditures: list[dict[str, Any]] = field(default_factory=list)

    def publish(self) -> None:
        for application, topic in ((self.payments, GRANTS), (self.bridge, BRIDGE), (self.ledger, EXPENDITURES)):
            publish_all(self.settings, application, topic)

    def spend(self, code: str, amount_cents: int, booked_on: str, **extra: Any) -> dict[str, Any]:
        status, answer = self.ledger.record_expenditure(code, expenditure_body(amount_cents, booked_on, **extra))
        assert status == 201
        self.expenditures.append(answer)
        return answer

    def close(self) -> None:
        for application in (self.payments, self.bridge, self.ledger):
            application.close()


def record_history(settings: Settings) -> Services:
    """A small honest history through the three services' own applications."""
    payments = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    payments.set_frame(2024, 1_713_000_000, date(2023, 12, 1))
    for code in CODES[:3]:
        payments.award_grant(2024, code, NAMES[code], 40_000_00, date(2024, 1, 15))
        payments.pay_advance(2024, code, 40_000_00, date(2024, 1, 31))
    bridge = build_application(BridgeApplication, settings.eventsourcing_env("bridge"))
    load_bridge_demo(settings, bridge)
    ledger = build_application(LedgerApplication, settings.eventsourcing_env("ledger"))
    services = Services(settings, payments, bridge, ledger)
    services.spend(CODES[0], 12_345_67, "2024-02-01")
    wrong = services.spend(CODES[0], 500_00, "2024-03-01", category="promotion")
    ledger.reverse_expenditure(CODES[0], uuid.UUID(wrong["expenditure_id"]), reason="booked twice",
                                 booked_on=date(2024, 3, 10))
    services.spend(CODES[1], 7_000_00, "2024-04-01", category="network_orchestration")
    return services


# -- tampering, as someone with database access would ------------------------------------------------


def events_table(settings: Settings, service: str) -> tuple[Any, Table]:
    """The engine and the eventsourcing table holding the service's stored events."""
    if settings.event_store == "sqlite":
        engine = create_engine(f"sqlite:///{settings.eventsourcing_env(service)['SQLITE_DBNAME']}")
        name = "stored_events"
    else:
        assert settings.postgres is not None
        engine = create_engine(settings.postgres.sqlalchemy_url)
        name = f"{service}_events"
    return engine, Table(name, MetaData(), autoload_with=engine)


def tamper(settings: Settings, service: str, stream_id: str, position: int, old: str, new: str) -> None:
    """Changes one stored event's state in place with an SQL UPDATE (the hash stays as stored)."""
    engine, table = events_table(settings, service)
    key = (table.c.originator_id == _originator(settings, stream_id)) & (table.c.originator_version == position)
    with engine.begin() as connection:
        state = bytes(connection.execute(select(table.c.state).where(key)).scalar_one())
        assert old.encode() in state, state
        changed = connection.execute(update(table).where(key).values(state=state.replace(old.encode(), new.encode())))
        assert changed.rowcount == 1
    engine.dispose()


def delete_stored(settings: Settings, service: str, stream_id: str, position: int) -> None:
    engine, table = events_table(settings, service)
    key = (table.c.originator_id == _originator(settings, stream_id)) & (table.c.originator_version == position)
    with engine.begin() as connection:
        assert connection.execute(table.delete().where(key)).rowcount == 1
    engine.dispose()


def _originator(settings: Settings, stream_id: str) -> Any:
    identifier = stream_uuid(stream_id)
    return identifier.hex if settings.event_store == "sqlite" else identifier


# -- the live projection ---------------------------------------------------------------------------


def project(settings: Settings, expected: int, timeout_s: float = 60) -> None:
    """Runs the live projector until ``expected`` events were taken (applied or refused)."""
    runner = build_runner(settings)
    engine = create_sql_engine(settings.view_db_url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            runner.run_once(timeout_ms=300)
            with engine.connect() as connection:
                # Taken = consumed up to the stored offsets: applied, dropped as duplicates or dead-lettered.
                consumed = connection.execute(select(func.sum(consumer_offsets.c.next_offset))).scalar_one() or 0
                if consumed >= expected:
                    runner.run_once(timeout_ms=300)
                    return
        raise AssertionError(f"the projection did not take {expected} events in {timeout_s} s")
    finally:
        runner.close()
        engine.dispose()


def table_names(engine: Any) -> list[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return [r[0] for r in connection.execute(text("select name from sqlite_master where type='table'"))]
        return [r[0] for r in connection.execute(text("select tablename from pg_tables"))]


# -- a random history, as envelopes ------------------------------------------------------------------


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RandomHistory:
    streams: Streams
    recorded: list[str] = field(default_factory=list)
    days: list[date] = field(default_factory=list)
    codes_years: set[tuple[str, int]] = field(default_factory=set)
    merger: tuple[str, str, str, str] | None = None
    """(predecessor, successor, effective_on, recorded_at) when the history has a merger."""
    bridge_accounts: dict[str, date | None] = field(default_factory=dict)
    """Library id -> the day its final account was submitted (None: never; the deadline is 2023-09-01)."""


def random_history(prefix: str, seed: int, expenditures: int = 150, *, merge: bool = False) -> RandomHistory:
    """Awards, advances, expenditures, reversals, late postings, closes, settlements, reclaims and
    the bridging subsidy, at random but keeping each stream's own order and the contracts.

    ``merge``: the last municipality merges into the first in 2024 (``GrantTransferred`` of its 2024
    and 2025 grants, effective on a day in May-August, recorded from mid-June); it posts nothing after
    the merger is recorded (the ledger refuses its code from the effective date), but its postings
    recorded before may be booked after the effective date."""
    rng = random.Random(seed)
    s = Streams(prefix)
    history = RandomHistory(s)
    clock = datetime(2023, 11, 1, 9, tzinfo=UTC)

    def tick(max_hours: int = 72) -> str:
        nonlocal clock
        clock += timedelta(hours=rng.randint(1, max_hours), microseconds=rng.randint(0, 999_999))
        history.recorded.append(stamp(clock))
        return stamp(clock)

    codes = list(CODES[: rng.randint(3, len(CODES))])
    years = (2024, 2025)
    awarded: dict[tuple[str, int], int] = {}
    for year in years:
        clock = max(clock, datetime(year - 1, 12, 1, 9, tzinfo=UTC))
        frame = rng.randint(10_000_000, 20_000_000) * 100
        s.event("GrantFrameSet", f"scheme-{year}", f"scheme-{year}", tick(), year=year, frame_cents=frame,
                decided_on=clock.date().isoformat())
        if rng.random() < 0.6:
            amended = frame - rng.randint(1, 1_000_000) * 100
            s.event("GrantFrameAmended", f"scheme-{year}", f"scheme-{year}", tick(), year=year,
                    frame_cents=amended, previous_frame_cents=frame, decided_on=clock.date().isoformat(),
                    reason="illustrative amendment")
        clock = max(clock, datetime(year, 1, 5, 9, tzinfo=UTC))
        for code in codes:
            amount = rng.randint(10_000, 900_000) * 100
            awarded[(code, year)] = amount
            grant = f"grant-{year}-{code}"
            s.event("GrantAwarded", grant, code, tick(6), grant_id=grant, year=year, municipality_code=code,
                    municipality_name=NAMES[code], amount_cents=amount, awarded_on=clock.date().isoformat(),
                    basis="annex")
            parts = rng.choice((1, 1, 2))
            paid = 0
            for part in range(parts):
                value = amount - paid if part == parts - 1 else amount // 2
                paid += value
                s.event("AdvancePaid", grant, code, tick(6), grant_id=grant, year=year, municipality_code=code,
                        amount_cents=value, paid_on=clock.date().isoformat())
            history.codes_years.add((code, year))

    bridge_frame = 2_700_000_00
    s.event("BridgeFrameSet", "bridge-frame", "bridge-frame", stamp(datetime(2022, 12, 1, 9, tzinfo=UTC)),
            frame_cents=bridge_frame, rate_cents_per_inhabitant="15", account_period_start="2019-01-01",
            spending_deadline="2023-05-01", account_deadline="2023-09-01")
    for n in range(rng.randint(1, 3)):
        library_id = f"NL-KVK-{41215098 + n}"
        stream = f"library-{library_id}"
        inhabitants = rng.randint(10_000, 900_000)
        grant_cents = inhabitants * 15
        s.event("LibraryRegistered", stream, library_id, stamp(datetime(2022, 12, 2, 9, n, tzinfo=UTC)),
                library_id=library_id, name=f"Library {n} (illustrative)",
                service_area=[{"municipality_code": codes[n % len(codes)], "inhabitants": inhabitants}])
        s.event("BridgeGrantSet", stream, library_id, stamp(datetime(2022, 12, 3, 9, n, tzinfo=UTC)),
                library_id=library_id, amount_cents=grant_cents, inhabitants=inhabitants, basis="computed",
                batch_id="b1", rate_cents_per_inhabitant="15", corrects_event_id=None)
        s.event("BridgePaymentMade", stream, library_id, stamp(datetime(2022, 12, 10, 9, n, tzinfo=UTC)),
                library_id=library_id, amount_cents=grant_cents, paid_on="2022-12-10", payment_batch_id=None)
        spent = rng.randint(0, grant_cents)
        # its final account: on time, late (after the deadline of 2023-09-01) or never submitted
        submitted = rng.choice((date(2023, 8, 1), date(2023, 9, 15), None))
        history.bridge_accounts[library_id] = submitted
        if submitted is None:
            continue
        submitted_at = datetime(submitted.year, submitted.month, submitted.day, 9, n, tzinfo=UTC)
        account = s.event(
            "BridgeAccountSubmitted", stream, library_id, stamp(submitted_at),
            library_id=library_id, grant_cents=grant_cents, paid_cents=grant_cents, spent_cents=spent,
            unspent_cents=grant_cents - spent, period_start="2019-01-01", period_end="2023-05-01",
            submitted_on=submitted.isoformat(), account_deadline="2023-09-01", late=submitted > date(2023, 9, 1))
        if grant_cents > spent:
            reclaimed_at = submitted_at + timedelta(days=14)
            s.event("BridgeReclaimIssued", stream, library_id, stamp(reclaimed_at),
                    library_id=library_id, amount_cents=grant_cents - spent, issued_on=reclaimed_at.date().isoformat(),
                    account_event_id=account["event_id"])

    # a year of postings, some late (booked well before they are recorded), some reversed
    recorded: list[dict[str, Any]] = []
    clock = datetime(2024, 1, 20, 9, tzinfo=UTC)
    merged: str | None = None
    for _ in range(expenditures):
        if merge and merged is None and clock >= datetime(2024, 6, 15, tzinfo=UTC):
            merged, successor = codes[-1], codes[0]
            effective = date(2024, 5, 1) + timedelta(days=rng.randint(0, 122))
            history.merger = (merged, successor, effective.isoformat(), tick(6))
            for year in years:
                grant = f"grant-{year}-{merged}"
                s.event("GrantTransferred", grant, merged, history.recorded[-1], grant_id=grant, year=year,
                        municipality_code=successor, from_municipality_code=merged, effective_on=effective.isoformat())
                history.codes_years.add((successor, year))
            recorded = [e for e in recorded if e["payload"]["municipality_code"] != merged]
        at = tick(120)
        year = 2024 if clock.year == 2024 or rng.random() < 0.3 else min(clock.year, 2025)
        latest = min(clock.date(), date(year, 12, 31))
        earliest = date(year, 1, 1)
        if latest < earliest:
            latest = earliest
        booked = earliest + timedelta(days=rng.randint(0, (latest - earliest).days))
        code = rng.choice([c for c in codes if c != merged])
        if rng.random() < 0.15 and recorded:
            original = rng.choice(recorded)
            recorded.remove(original)
            p = original["payload"]
            on = max(date.fromisoformat(p["booked_on"]), min(clock.date(), date(p["grant_year"], 12, 31)))
            s.event("ExpenditureReversed", original["stream_id"], p["municipality_code"], at,
                    expenditure_id=p["expenditure_id"], municipality_code=p["municipality_code"],
                    grant_year=p["grant_year"], reverses_event_id=original["event_id"],
                    amount_cents=p["amount_cents"], category=p["category"], booked_on=on.isoformat(),
                    reason="illustrative reversal")
            continue
        expenditure_id = str(uuid.uuid4())
        counterparty = rng.choice(
            ({"id": LIBRARY, "name": "OBA (illustrative)"}, {"id": "NL-KVK-41215099", "name": "Library 1"},
             {"id": "buurtteam", "name": "Buurtteam"})
        )
        recorded.append(
            s.event("ExpenditureRecorded", f"expenditure-{expenditure_id}", code, at, expenditure_id=expenditure_id,
                    municipality_code=code, grant_year=year,
                    category=rng.choice(("library_funding", "promotion", "network_orchestration")),
                    amount_cents=rng.randint(1, 5_000_000), booked_on=booked.isoformat(), counterparty=counterparty,
                    description="illustrative", reference=f"R-{rng.randint(1, 10**6)}")
        )
        history.codes_years.add((code, year))
        history.days.append(booked)
        if clock >= datetime(2025, 12, 1, tzinfo=UTC):
            break

    # closes, settlements (with a correction now and then) and reclaims of 2024, in 2025
    clock = max(clock, datetime(2025, 3, 1, 9, tzinfo=UTC))
    for code in codes:
        if code == merged:  # its grants passed on: the successor settles (not modelled here)
            continue
        if rng.random() < 0.7:
            s.event("YearClosed", f"books-{code}-2024", code, tick(24), municipality_code=code, grant_year=2024,
                    closed_on=clock.date().isoformat(), closed_by=rng.choice(("ministry", "auditor")),
                    final_account=rng.random() < 0.5)
            history.codes_years.add((code, 2024))
        if rng.random() < 0.7:  # the municipality's own eindverantwoording (issue 15), on time or late
            by = rng.choice(("municipality", "ministry"))
            s.event("SisaLineDeclared", f"sisa-{code}-2024-2024", code, tick(24), municipality_code=code,
                    accounts_year=2024, grant_year=2024, final_account=rng.random() < 0.5,
                    declared_on=clock.date().isoformat(), declared_by=by,
                    reason="from the municipality's SiSa annex" if by == "ministry" else None)
        if rng.random() < 0.8:
            grant = f"grant-2024-{code}"
            amount = awarded[(code, 2024)]
            settled = rng.randint(amount // 2, amount)
            first = s.event("GrantSettled", grant, code, tick(24), grant_id=grant, year=2024, municipality_code=code,
                            reported_spending_cents=settled, settled_cents=settled,
                            settled_on=clock.date().isoformat(), corrects_event_id=None, reason=None)
            if rng.random() < 0.5:
                settled = rng.randint(amount // 2, amount)
                s.event("GrantSettled", grant, code, tick(24), grant_id=grant, year=2024, municipality_code=code,
                        reported_spending_cents=settled, settled_cents=settled,
                        settled_on=clock.date().isoformat(), corrects_event_id=first["event_id"],
                        reason="illustrative correction")
            if amount > settled:
                s.event("ReclaimIssued", grant, code, tick(24), grant_id=grant, year=2024, municipality_code=code,
                        amount_cents=amount - settled, issued_on=clock.date().isoformat())
                if rng.random() < 0.6:
                    s.event("ReclaimReceived", grant, code, tick(24), grant_id=grant, year=2024,
                            municipality_code=code, amount_cents=amount - settled,
                            received_on=clock.date().isoformat())
    return history


# -- moving whole rows, as someone with database access would ------------------------------------


def _events(settings: Settings, service: str) -> tuple[Any, str, str]:
    """The engine, table and notification-id column of the service's stored events."""
    if settings.event_store == "sqlite":
        engine = create_engine(f"sqlite:///{settings.eventsourcing_env(service)['SQLITE_DBNAME']}")
        return engine, "stored_events", "rowid"
    assert settings.postgres is not None
    return create_engine(settings.postgres.sqlalchemy_url), f"{service}_events", "notification_id"


def notification_ids(settings: Settings, service: str) -> list[int]:
    engine, table, nid = _events(settings, service)
    with engine.connect() as connection:
        found = [int(r[0]) for r in connection.execute(text(f"SELECT {nid} FROM {table} ORDER BY {nid}"))]
    engine.dispose()
    return found


def cut_row(settings: Settings, service: str, notification_id: int) -> dict[str, Any]:
    """Removes one stored event's row and returns it, to be put back elsewhere."""
    engine, table, nid = _events(settings, service)
    with engine.begin() as connection:
        row = connection.execute(
            text(f"SELECT originator_id, originator_version, topic, state FROM {table} WHERE {nid} = :n"),
            {"n": notification_id},
        ).mappings().one()
        connection.execute(text(f"DELETE FROM {table} WHERE {nid} = :n"), {"n": notification_id})
    engine.dispose()
    return dict(row)


def insert_row(settings: Settings, service: str, row: dict[str, Any], notification_id: int | None = None) -> None:
    """Puts a row in: at ``notification_id``, or where the store would put a new one (the end)."""
    engine, table, nid = _events(settings, service)
    columns = "originator_id, originator_version, topic, state"
    values = ":originator_id, :originator_version, :topic, :state"
    if notification_id is not None:
        columns, values = f"{nid}, {columns}", f":nid, {values}"
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), {**row, "nid": notification_id})
    engine.dispose()


def shift_notifications(settings: Settings, service: str, after: int, by: int) -> None:
    """Moves the notification ids above ``after`` up by ``by``, making room (two steps: no collisions)."""
    engine, table, nid = _events(settings, service)
    far = 1_000_000_000
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {table} SET {nid} = {nid} + :far WHERE {nid} > :after"),
                           {"far": far, "after": after})
        connection.execute(text(f"UPDATE {table} SET {nid} = {nid} - :far + :by WHERE {nid} > :far"),
                           {"far": far, "by": by})
    engine.dispose()


def swap_states(settings: Settings, service: str, first: int, second: int) -> None:
    """Swaps the stored content of two rows (each keeps its notification id and stream position)."""
    engine, table, nid = _events(settings, service)
    with engine.begin() as connection:
        states = {
            n: connection.execute(text(f"SELECT state FROM {table} WHERE {nid} = :n"), {"n": n}).scalar_one()
            for n in (first, second)
        }
        for n, other in ((first, second), (second, first)):
            connection.execute(text(f"UPDATE {table} SET state = :s WHERE {nid} = :n"), {"s": states[other], "n": n})
    engine.dispose()
