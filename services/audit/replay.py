"""The auditor's replay: the three topics from offset 0 -> every balance, in memory.

Each valid message is turned into money movements by ``effects_of`` (the live projection's own
function) and folded into dicts, one entry per balance; what grows with the history (every event
id, every stream's head, line 1 of every event) is kept on disk in an ``EventIndex``.
The replay keeps the projector's rules: a message that breaks
its contract is skipped, a re-sent ``event_id`` counts once, a refused event changes nothing.
A message not sealed by its topic's owner (``contracts/provenance.py``) is skipped too, and listed
under ``unproven`` with its topic, partition, offset and event id. Every message skipped or refused is
in ``stats.problems``: ``ido audit replay`` then exits 1 (services/audit/cli.py, exit statuses).
As the contracts say, a stream is read in ``stream_position`` order: an event whose predecessor
has not been read yet (a grant's stream moves partition after a merger) waits for it.

``as_of`` keeps movements booked on or before that day, ``known_at`` movements recorded at or
before that moment: the same filters as the live queries (``LedgerQueries``). Every event is still
read, because an amount that is *set* moves by the difference to what was set before.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kafka import TopicPartition

from contracts.canonical import format_utc
from contracts.message_check import MessageCheck
from contracts.provenance import ProvenanceCheck
from contracts.topics import EXPENDITURES
from services.audit.checks import ReadingProcess, Verdict, check_batch, read_and_check
from services.audit.event_index import EventIndex
from services.audit.sources import TopicReader, audit_kafka_config, audited_topics
from services.common.check_process import parallel_by_default
from services.common.config import Settings
from services.common.csv_output import csv_text
from services.common.progress import Progress
from services.ledger.read_side import (
    GRANT_KINDS,
    LOOKUPS,
    BridgeAccounts,
    Declaration,
    Effects,
    GrantFigures,
    GrantOnDay,
    Merger,
    Original,
    PointInTime,
    Refused,
    SpentOnDay,
    after_close_figures,
    balance_columns,
    balance_figures,
    effects_of,
    flat_balance,
    grant_on_days,
    latest_deadline,
    national_answer,
    sisa_answer,
    sisa_lines,
    spent_in_year,
    spent_on_days,
)

INDEX_BATCH_SIZE = 20_000
"""New ids and heads held in RAM before they go to the on-disk index in one batch."""

BALANCE_COLUMNS = balance_columns(categories_first=False)


class ReadingOrderError(RuntimeError):
    """Spending recorded after a merger was fed before it: ``MemoryBook`` cannot split it exactly."""


class MemoryBook:
    """The ``AppliedSoFar`` of ``effects_of``: running sums per ``LOOKUPS`` entry in dicts (as many as there
    are balances), line 1 of every event in the on-disk ``EventIndex`` (as many as there are events)."""

    def __init__(self, index: EventIndex) -> None:
        self.sums: dict[tuple[Any, ...], int] = defaultdict(int)
        self.index = index
        self.closed: set[tuple[str, int]] = set()
        self.successors: dict[tuple[str, int], Merger] = {}
        # Spending per (code, year) and (category, booking day, spending day): what a merger moves. It
        # grows with the days, not with the postings (booking day and spending day differ only for moves),
        # so it cannot split a day's sum at a merger's recording as the SQL book does: ``Replay.read``
        # reads the grants topic first, so no spending recorded after a merger is read before it.
        # Each day's sum is [cents, latest recorded_at, first recorded_at]: a list, not a dict of six
        # fields, as there are as many as days and categories (~450 bytes less each).
        self.spent_days: dict[tuple[str, int], dict[tuple[str, date, date], list[Any]]] = defaultdict(dict)
        # A grant's figures per (grant id, holder) and (kind, booking day): what a merger moves, each day on
        # its own. A grant has a few events (award, advances, settlements, reclaims), so this stays small.
        self.grant_days: dict[tuple[str, str], dict[tuple[str, date], int]] = defaultdict(dict)

    def total(self, kind: str, **where: Any) -> int:
        fields = tuple(sorted(where))
        if fields not in LOOKUPS.get(kind, ()):
            raise KeyError(f"{kind} by {fields} is not in LOOKUPS")
        return self.sums.get((kind, fields, tuple(where[f] for f in fields)), 0)

    def original(self, event_id: str) -> Original | None:
        return self.index.original(event_id)

    def is_closed(self, municipality_code: str, year: int) -> bool:
        return (municipality_code, year) in self.closed

    def successor(self, municipality_code: str, year: int) -> Merger | None:
        return self.successors.get((municipality_code, year))

    def grant_by_day(self, grant_id: str, municipality_code: str) -> list[GrantOnDay]:
        days = self.grant_days.get((grant_id, municipality_code), {})
        return grant_on_days(
            {"kind": kind, "booked_on": booked_on, "amount_cents": cents} for (kind, booked_on), cents in days.items()
        )

    def spent_by_day(self, municipality_code: str, year: int, merger_recorded_at: str) -> list[SpentOnDay]:
        days = self.spent_days.get((municipality_code, year), {})
        for (_category, booked_on, _spent_on), (_cents, recorded_at, first_recorded_at) in days.items():
            # exact only if every recording of the day came before the merger, or all at one moment
            if recorded_at > merger_recorded_at and first_recorded_at != recorded_at:
                raise ReadingOrderError(
                    f"spending of {municipality_code} in {year} booked on {booked_on} was recorded after "
                    f"the merger recorded at {merger_recorded_at} but read before it: read the grants topic first"
                )
        return spent_on_days(
            (
                {"category": category, "booked_on": booked_on, "spent_on": spent_on, "amount_cents": cents,
                 "recorded_at": recorded_at}
                for (category, booked_on, spent_on), (cents, recorded_at, _first) in days.items()
            ),
            merger_recorded_at,
        )

    def record(self, event_id: str, effects: Effects, recorded_at: str) -> None:
        for line, row in effects.rows:
            kind = row["kind"]
            if kind == "spent":
                days = self.spent_days[(row["municipality_code"], row["year"])]
                key = (row["category"], row["booked_on"], row.get("spent_on") or row["booked_on"])
                row_recorded_at = row.get("recorded_at", recorded_at)
                so_far = days.get(key)
                if so_far is None:
                    days[key] = [row["amount_cents"], row_recorded_at, row_recorded_at]
                else:
                    so_far[0] += row["amount_cents"]
                    if row_recorded_at > so_far[1]:
                        so_far[1] = row_recorded_at
                    if row_recorded_at < so_far[2]:
                        so_far[2] = row_recorded_at
            elif kind in GRANT_KINDS:
                grant_days = self.grant_days[(row["grant_id"], row["municipality_code"])]
                grant_days[(kind, row["booked_on"])] = grant_days.get((kind, row["booked_on"]), 0) + row["amount_cents"]
            lookups = LOOKUPS.get(kind)
            if lookups:
                for fields in lookups:
                    self.sums[(kind, fields, tuple(row[f] for f in fields))] += row["amount_cents"]
            if line == 1:
                self.index.remember_original(event_id, Original.of_row(row))
        if effects.closing is not None:
            self.closed.add((effects.closing["municipality_code"], effects.closing["year"]))
        if (merger := effects.merger) is not None:
            self.successors.setdefault(
                (merger["municipality_code"], merger["year"]),
                Merger(merger["successor_code"], merger["effective_on"], merger["recorded_at"]),
            )


@dataclass
class ReplayStats:
    messages: int = 0
    applied: int = 0
    duplicates: int = 0
    invalid: int = 0
    refused: int = 0
    waited: int = 0
    problems: list[str] = field(default_factory=list)
    unproven: list[str] = field(default_factory=list)
    """Messages refused for their provenance: where (topic, partition, offset), event id, reason."""
    after_close: list[dict[str, Any]] = field(default_factory=list)
    """Postings and reversals recorded after their year's close (``Effects.after_close``): counted in the
    figures as the live view counts them, and named here by event id, municipality, year, recording."""


class Replay:
    def __init__(
        self,
        *,
        as_of: date | None = None,
        known_at: datetime | None = None,
        strict: bool = False,
        provenance: ProvenanceCheck | None = None,
        sisa_indicators: Mapping[int, tuple[str, ...]] = MappingProxyType({}),
        today: date | None = None,
    ):
        self.provenance = provenance
        self.sisa_indicators = sisa_indicators
        self.today = today or datetime.now(UTC).date()
        """The day SiSa deadlines are judged on without ``as_of`` (the live view's rule)."""
        self.point = PointInTime(as_of=as_of, known_at=known_at)
        self.as_of = as_of
        self.known_at = format_utc(known_at) if known_at is not None else None
        self.check = MessageCheck(strict=strict)
        self._index = EventIndex(batch_size=INDEX_BATCH_SIZE)
        self.book = MemoryBook(self._index)
        self.stats = ReplayStats()
        self.offsets: dict[str, dict[str, int]] = {}
        self._waiting: dict[str, dict[int, tuple[str, dict[str, Any]]]] = {}
        # the filtered sums the answers are made of
        self.cells: dict[tuple[str, int, str, str | None], int] = defaultdict(int)
        self.frames: dict[int, int] = defaultdict(int)
        self.bridge_frame = 0
        self.library_kinds: dict[tuple[str, str], int] = defaultdict(int)
        self.funding: dict[tuple[int, str | None], int] = defaultdict(int)
        self.spent_by_spending_year: dict[tuple[str, int, int], int] = defaultdict(int)
        """(municipality, grant year, year spent) -> spent: the SiSa lines' figures (``spent_in_year``)."""
        self.closings: dict[tuple[str, int], dict[str, Any]] = {}
        self.declarations: dict[tuple[str, int, int], dict[str, Any]] = {}
        """(municipality, accounts year, grant year) -> its SiSa declaration, with ``recorded_at``."""
        self.bridge_deadlines: list[dict[str, Any]] = []
        self.bridge_accounts: list[dict[str, Any]] = []
        """The bridging frame's deadlines and the libraries' accounts, with ``recorded_at``, in reading order."""
        self.municipality_names: dict[str, str] = {}
        self.library_names: dict[str, str] = {}
        # what the 360Giving export lists, at the point: a grant only once its award is counted
        self.grants: dict[str, dict[str, Any]] = {}
        """Grant id -> its first ``GrantAwarded`` payload counted under ``as_of``/``known_at``."""
        self.advances: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.grant_kinds: dict[tuple[str, str], int] = defaultdict(int)
        self.bridge_grants: dict[str, dict[str, Any]] = {}
        """Library id -> its first ``BridgeGrantSet`` of more than 0 counted (``awarded_on``: the day it was set)."""
        self.bridge_payments: dict[str, list[dict[str, Any]]] = defaultdict(list)

    # -- reading -------------------------------------------------------------------------------

    def read(self, reader: TopicReader, *, show_progress: bool = False, parallel: bool | None = None) -> Replay:
        """Every message of ``reader``'s topics; ``parallel`` (default: when the machine has a second core):
        read and checked in a second process (``services/audit/checks.py``), the verdicts the same."""
        self.offsets = reader.offsets()
        total = sum(sum(ends.values()) for ends in self.offsets.values())
        parallel = parallel_by_default() if parallel is None else parallel
        phases = reading_phases(reader.end_offsets)
        with (
            Progress("replay", total=total, unit="msg", mode=None if show_progress else "off") as progress,
            ReadingProcess(reader, phases, self.check, self.provenance)
            if parallel and phases
            else nullcontext(read_and_check(reader, phases, self.check, self.provenance)) as batches,
        ):
            for topic, partition, offsets, verdicts in batches:
                self._take_checked(topic, verdicts, _offset_namer(topic, partition, offsets))
                progress.update(len(verdicts))
        self.finish()
        return self

    def feed(
        self, topic: str, value: bytes | None, where: str = "", headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """One message (``where`` names it in problems)."""
        self._take_checked(topic, check_batch(self.check, self.provenance, topic, [(value, headers)]), lambda _i: where)

    def feed_batch(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        """Kafka records (``.value``, ``.headers``, ``.offset``) of one partition, in offset order."""
        verdicts = check_batch(self.check, self.provenance, topic, [(r.value, r.headers) for r in records])
        self._take_checked(topic, verdicts, _offset_namer(topic, partition, [r.offset for r in records]))

    def _take_checked(self, topic: str, verdicts: Sequence[Verdict], where: Callable[[int], str]) -> None:
        """The checked messages of one batch, in order (``checks.check_batch``'s verdicts)."""
        stats = self.stats
        take = self._take
        for i, verdict in enumerate(verdicts):
            stats.messages += 1
            if isinstance(verdict, dict):
                take(topic, verdict, where, i)
            elif isinstance(verdict, str):
                stats.invalid += 1
                stats.problems.append(f"{where(i)}: skipped, breaks its contract: {verdict}")
            else:
                event_id, reason = verdict
                stats.invalid += 1
                refusal = f"{where(i)} event {event_id}: refused, {reason}"
                stats.unproven.append(refusal)
                stats.problems.append(refusal)

    def _take(self, topic: str, envelope: dict[str, Any], where: Callable[[int], str], i: int) -> None:
        if not self._index.first_time(envelope["event_id"]):
            self.stats.duplicates += 1
            return
        stream_id = envelope["stream_id"]
        position = envelope["stream_position"]
        last = self._index.head(stream_id)
        if position > last + 1:
            self.stats.waited += 1
            self._waiting.setdefault(stream_id, {})[position] = (topic, envelope)
            return
        self._apply(topic, envelope, lambda: where(i))
        if position > last:
            self._index.set_head(stream_id, position)
            last = position
        if stream_id in self._waiting:
            self._release(stream_id, last)

    def _release(self, stream_id: str, last: int) -> None:
        waiting = self._waiting[stream_id]
        while (nxt := last + 1) in waiting:
            topic, envelope = waiting.pop(nxt)
            self._apply(topic, envelope, None)
            self._index.set_head(stream_id, nxt)
            last = nxt
        if not waiting:
            del self._waiting[stream_id]

    def finish(self) -> None:
        """Applies what still waits for a predecessor that never came (the live projector did too).

        The end of feeding: the on-disk index of events and streams is dropped; the answers remain."""
        for stream_id, waiting in sorted(self._waiting.items()):
            for position in sorted(waiting):
                topic, envelope = waiting[position]
                self.stats.problems.append(
                    f"stream {stream_id}: position {position} applied without its predecessor(s)"
                )
                self._apply(topic, envelope, None)
        self._waiting.clear()
        self._index.close()

    # -- folding -------------------------------------------------------------------------------

    def _apply(self, topic: str, envelope: dict[str, Any], where: Callable[[], str] | None) -> None:
        try:
            effects = effects_of(topic, envelope, self.book)
        except Refused as refused:
            self.stats.refused += 1
            self.stats.problems.append(f"{(where() if where else '') or envelope['event_id']}: refused: {refused}")
            return
        self.stats.applied += 1
        self.book.record(envelope["event_id"], effects, envelope["recorded_at"])
        recorded_at = envelope["recorded_at"]
        if effects.municipality_name is not None:
            code, name = effects.municipality_name
            self.municipality_names[code] = name
        if effects.library_name is not None:
            library_id, name = effects.library_name
            self.library_names[library_id] = name
        if effects.closing is not None:
            closing = effects.closing
            self.closings[(closing["municipality_code"], closing["year"])] = {**closing, "recorded_at": recorded_at}
        if effects.declaration is not None:
            d = effects.declaration
            key = (d["municipality_code"], d["accounts_year"], d["grant_year"])
            self.declarations[key] = {**d, "recorded_at": recorded_at}
        if effects.bridge_deadline is not None:
            self.bridge_deadlines.append({**effects.bridge_deadline, "recorded_at": recorded_at})
        if effects.bridge_account is not None:
            self.bridge_accounts.append({**effects.bridge_account, "recorded_at": recorded_at})
        event_type = envelope["event_type"]
        if effects.after_close is not None and (self.known_at is None or recorded_at <= self.known_at):
            self.stats.after_close.append(
                {"event_id": envelope["event_id"], "event_type": event_type, **effects.after_close,
                 "recorded_at": recorded_at}
            )
        as_of, known_at = self.as_of, self.known_at
        for line, row in effects.rows:
            if as_of is not None and row["booked_on"] > as_of:
                continue
            # a row may be known later than its event (spending moved by a merger recorded after it)
            if known_at is not None and row.get("recorded_at", recorded_at) > known_at:
                continue
            self._fold(row)
            if line == 1:
                self._remember_grant(event_type, envelope, row)

    def _remember_grant(self, event_type: str, envelope: dict[str, Any], row: dict[str, Any]) -> None:
        """The 360Giving export's grants and payments, once their line 1 is counted at the point (an
        award booked after ``as_of`` or recorded after ``known_at`` is not an award yet)."""
        p = envelope["payload"]
        event_id = envelope["event_id"]
        if event_type == "GrantAwarded":
            self.grants.setdefault(p["grant_id"], {**p, "event_id": event_id})
        elif event_type == "AdvancePaid":
            self.advances[p["grant_id"]].append(
                {"event_id": event_id, "paid_on": p["paid_on"], "amount_cents": p["amount_cents"]}
            )
        elif event_type == "BridgeGrantSet" and p["amount_cents"] > 0:  # a grant of nothing awards nothing
            self.bridge_grants.setdefault(
                p["library_id"], {**p, "event_id": event_id, "awarded_on": row["booked_on"].isoformat()}
            )
        elif event_type == "BridgePaymentMade":
            self.bridge_payments[p["library_id"]].append(
                {"event_id": event_id, "paid_on": p["paid_on"], "amount_cents": p["amount_cents"]}
            )

    def _fold(self, row: dict[str, Any]) -> None:
        kind = row["kind"]
        amount = row["amount_cents"]
        code = row.get("municipality_code")
        year = row.get("year")
        if kind == "spent":
            category = row["category"]
            if code is not None and year is not None:
                self.cells[(code, year, kind, category)] += amount
                self.spent_by_spending_year[(code, year, spent_in_year(row))] += amount
            if category == "library_funding" and year is not None:
                self.funding[(year, row.get("counterparty_id"))] += amount
            return
        if code is not None and year is not None:
            self.cells[(code, year, kind, None)] += amount
        grant_id = row.get("grant_id")
        if grant_id is not None:
            self.grant_kinds[(grant_id, kind)] += amount
        if kind == "grant_frame" and year is not None:
            self.frames[year] += amount
        elif kind == "bridge_frame":
            self.bridge_frame += amount
        library_id = row.get("library_id")
        if library_id is not None and kind.startswith("bridge_"):
            self.library_kinds[(library_id, kind)] += amount

    # -- answers (the shapes of LedgerQueries, without its consumer offsets) ------------------------

    def _books(self, code: str | None, year: int) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
        books: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        for (c, y, kind, category), cents in self.cells.items():
            if y != year or (code is not None and c != code):
                continue
            kinds, categories = books.setdefault(c, ({}, {}))
            if kind == "spent":
                categories[category or ""] = categories.get(category or "", 0) + cents
            else:
                kinds[kind] = kinds.get(kind, 0) + cents
        return books

    def years(self) -> list[int]:
        return sorted({y for (_c, y, _k, _cat) in self.cells} | set(self.frames))

    def municipality_years(self) -> list[tuple[str, int]]:
        return sorted({(c, y) for (c, y, _k, _cat) in self.cells} | set(self.closings))

    def balances(self, code: str, year: int) -> dict[str, Any]:
        kinds, categories = self._books(code, year).get(code, ({}, {}))
        late = (e["event_id"] for e in self.stats.after_close if (e["municipality_code"], e["year"]) == (code, year))
        return {
            "municipality_code": code,
            "year": year,
            **balance_figures(kinds, categories),
            **after_close_figures(late),
            **self.point.describe(),
        }

    def national(self, year: int) -> dict[str, Any]:
        per_library: dict[str, dict[str, int]] = {}
        for (library_id, kind), cents in self.library_kinds.items():
            per_library.setdefault(library_id, {})[kind] = cents
        answer = national_answer(
            year, self._books(None, year), self.municipality_names, self.frames.get(year, 0), per_library,
            self.library_names, self.bridge_frame,
            [(library_id, cents) for (y, library_id), cents in self.funding.items() if y == year],
            sisa=self._sisa_lines(year),
            bridge_accounts=self._bridge_accounts(),
            passed_on={
                code for (code, merged_year), merger in self.book.successors.items()
                if merged_year == year and self._visible(merger.effective_on, merger.recorded_at)
            },
        )
        return {**answer, **self.point.describe()}

    def _bridge_accounts(self) -> BridgeAccounts:
        """The libraries' accounts and the frame's deadline at the point, as ``LedgerQueries`` finds them."""
        accounts = sorted(
            (a for a in self.bridge_accounts if self._visible(a["submitted_on"], a["recorded_at"])),
            key=lambda account: account["recorded_at"],
        )
        return BridgeAccounts(
            accounts={account["library_id"]: account for account in accounts},  # the latest recorded stands
            account_deadline=latest_deadline(  # a rule, not a booking: as known, whatever the day judged
                d for d in self.bridge_deadlines if self.known_at is None or d["recorded_at"] <= self.known_at
            ),
            day=self.point.day(self.today),
        )

    def _sisa_lines(self, year: int, code: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """The SiSa lines of accounts year ``year`` per municipality, as ``LedgerQueries`` finds them."""
        figures: dict[str, GrantFigures] = {}
        for (c, g, kind, _category), cents in self.cells.items():
            if kind == "awarded" and g <= year and (code is None or c == code):
                figures.setdefault(c, {}).setdefault(g, [0, 0, 0])[0] += cents
        for (c, g, booked), cents in self.spent_by_spending_year.items():
            if g <= year and booked <= year and (code is None or c == code):
                line = figures.setdefault(c, {}).setdefault(g, [0, 0, 0])
                line[1] += cents if booked == year else 0
                line[2] += cents
        declared: dict[str, dict[tuple[int, int], Declaration]] = {}
        for (c, t, g), d in self.declarations.items():
            if t <= year and (code is None or c == code) and self._visible(d["declared_on"], d["recorded_at"]):
                declared.setdefault(c, {})[(t, g)] = Declaration.of_row(d)
        day = self.point.day(self.today)
        return {c: sisa_lines(year, f, declared.get(c, {}), self.sisa_indicators, day) for c, f in figures.items()}

    def _visible(self, on: date, recorded_at: str) -> bool:
        """What ``as_of`` and ``known_at`` keep of a dated record (a closing, a declaration)."""
        return not (
            (self.as_of is not None and on > self.as_of) or (self.known_at is not None and recorded_at > self.known_at)
        )

    def sisa(self, code: str, year: int) -> dict[str, Any]:
        closing = self.closings.get((code, year))
        if closing is not None and not self._visible(closing["closed_on"], closing["recorded_at"]):
            closing = None
        lines = self._sisa_lines(year, code).get(code, [])
        return {**sisa_answer(code, year, lines, closing), **self.point.describe()}

    # -- output --------------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        return {
            **self.point.describe(),
            "offsets": self.offsets,
            "stats": {
                "messages": self.stats.messages,
                "applied": self.stats.applied,
                "duplicates": self.stats.duplicates,
                "invalid": self.stats.invalid,
                "refused": self.stats.refused,
                "applied_after_waiting_for_predecessor": self.stats.waited,
                "unproven": len(self.stats.unproven),
                "recorded_after_close": len(self.stats.after_close),
            },
            "unproven": self.stats.unproven,
            "recorded_after_close": self.stats.after_close,
            "problems": self.stats.problems,
            "national": [self.national(year) for year in self.years()],
            "municipalities": [
                {**self.balances(code, year), "sisa": self.sisa(code, year)}
                for code, year in self.municipality_years()
            ],
        }

    def balances_csv(self) -> str:
        rows = []
        for code, year in self.municipality_years():
            flat = flat_balance(self.balances(code, year))
            rows.append([code, self.municipality_names.get(code, ""), year, *(flat[c] for c in BALANCE_COLUMNS)])
        return csv_text(["municipality_code", "name", "year", *BALANCE_COLUMNS], rows)

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = out_dir / "balances.json", out_dir / "balances.csv"
        json_path.write_text(json.dumps(self.document(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        csv_path.write_text(self.balances_csv(), encoding="utf-8")
        return [json_path, csv_path]


def _offset_namer(topic: str, partition: int, offsets: Sequence[int]) -> Callable[[int], str]:
    return lambda i: f"topic {topic} partition {partition} offset {offsets[i]}"


def reading_phases(end_offsets: dict[TopicPartition, int]) -> list[dict[TopicPartition, int]]:
    """The payments' and the bridge's topics, then the expenditures': every merger is applied before the
    spending it moves, which ``MemoryBook`` needs to know each part's move from the right moment."""
    first = {tp: end for tp, end in end_offsets.items() if not tp.topic.endswith(EXPENDITURES.name)}
    then = {tp: end for tp, end in end_offsets.items() if tp.topic.endswith(EXPENDITURES.name)}
    return [phase for phase in (first, then) if phase]


def replay_topics(
    settings: Settings,
    *,
    as_of: date | None = None,
    known_at: datetime | None = None,
    strict: bool = False,
    topics: Iterable[str] | None = None,
    show_progress: bool = False,
    verify_provenance: bool = True,
) -> Replay:
    """``verify_provenance=False`` only for benchmarks: ``ido audit replay`` always checks the seals."""
    from services.common.signing import build_provenance_check

    provenance = build_provenance_check(settings) if verify_provenance else None
    reader = TopicReader(audit_kafka_config(settings), list(topics or audited_topics(settings)))
    try:
        return Replay(
            as_of=as_of, known_at=known_at, strict=strict, provenance=provenance,
            sisa_indicators=settings.sisa_indicators,
        ).read(reader, show_progress=show_progress)
    finally:
        reader.close()
