"""Random histories through the real services' HTTP APIs, step by step against the oracle (issue 20,
Must show 2): a hypothesis ``RuleBasedStateMachine``.

Each rule is one command (valid or not: the arguments are drawn freely, and ``None`` for an amount
means "exactly what is due", so that most commands can succeed). A step sends the command's request,
applies the command to the oracle, and fails when the two verdicts differ. Then the services' outboxes
are relayed to the real broker and the machine waits until the real projector applied them. The
invariants run after every step: the verdicts agreed, a refused command stored nothing and changed no
published figure, the national and bridge figures equal the oracle's, and the money is conserved.
Other rules retry the last write with its Idempotency-Key, and compare every figure (balances,
national, SiSa, bridge, the CSV exports, the audit replay) at a random ``as_of`` / ``known_at``.

Every rule's arguments are plain values (ints, codes, ``datetime.date``), so the steps hypothesis prints
for a failing (shrunk) history are a script that replays it: see docs/DEVELOPING.md, "Random histories
through the services".
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from kafka import KafkaAdminClient

from contracts.values import CATEGORIES
from services.audit.replay import replay_topics
from services.ledger.read_side import PointInTime
from tests.oracle import commands as c
from tests.oracle.compare import BALANCE_KEYS, differences
from tests.oracle.histories import BRIDGE_DEADLINE, CODES, LIBRARIES, YEARS
from tests.oracle.live import TODAY, Answer, HttpFigures, LiveStack, Request
from tests.oracle.model import ACCEPTED, Oracle, Point, Refused
from tests.support.infra import KafkaInfo

# -- the arguments of the rules ----------------------------------------------------------------------

years = st.sampled_from(YEARS)
codes = st.sampled_from(CODES)
libraries = st.sampled_from(LIBRARIES)
amounts = st.integers(0, 6_000_000)  # cents; 0 is refused everywhere
due = st.none() | amounts  # None: exactly what is still due
days = st.dates(date(2023, 11, 1), date(2026, 2, 28))  # mostly within 2024 and 2025, some outside


def within(year: int) -> st.SearchStrategy[date]:
    return st.dates(date(year, 1, 1), date(year, 12, 31))


# a grant year with a booking day in it, or (one time in two) any day
year_and_day = st.one_of(years.flatmap(lambda y: st.tuples(st.just(y), within(y))), st.tuples(years, days))
categories = st.sampled_from(CATEGORIES)
rows = st.lists(st.tuples(year_and_day, categories, amounts, libraries), min_size=1, max_size=3)


def now() -> datetime:
    return datetime.now(UTC)


def without_offsets(figures: Any) -> Any:
    """A published answer without what moves while nothing changes (the projection's offsets)."""
    return {k: v for k, v in figures.items() if k != "offsets"}


class Disagreement(AssertionError):
    """The ledger and the oracle disagree: a verdict or a figure."""


class OracleMachine(RuleBasedStateMachine):
    """One history: fresh stores and topics, the three services, the projector, an empty oracle."""

    kafka: ClassVar[KafkaInfo]
    admin: ClassVar[KafkaAdminClient]
    folder: ClassVar[Path]
    runs: ClassVar[int] = 0

    @classmethod
    def use(cls, kafka: KafkaInfo, admin: KafkaAdminClient, folder: Path) -> None:
        """The broker and a folder for the stores: a test sets them before hypothesis runs the machine."""
        cls.kafka, cls.admin, cls.folder = kafka, admin, folder

    def __init__(self) -> None:
        super().__init__()
        OracleMachine.runs += 1
        self.stack = LiveStack.start(self.kafka, self.admin, self.folder / f"history-{OracleMachine.runs}")
        self.oracle = Oracle(today=TODAY)
        self.marks: list[datetime] = []  # moments between steps: every command is recorded before or after each
        self.spent: list[tuple[str, str]] = []  # (expenditure id, the code that recorded it)
        self.last: tuple[c.Command, Request, str, Answer] | None = None
        self.refused = False
        self.stored_before: dict[str, int] = {}
        self.published = self.figures()

    def teardown(self) -> None:
        self.stack.close()

    # -- one step ------------------------------------------------------------------------------------

    def step(self, command_at: Any, *, expenditure_code: str | None = None) -> Answer:
        """Sends the command made by ``command_at(known_at)``, applies it to the oracle, compares verdicts."""
        key = f"k-{len(self.marks)}-{now().timestamp()}"
        command: c.Command = command_at(now())
        request = self.stack.request(command, expenditure_code=expenditure_code)
        self.stored_before = self.stack.stored()
        answer = self.stack.call(request, key)
        if isinstance(command, (c.Spend, c.ImportExpenditures)) and answer.accepted:
            command = with_given_ids(command, answer.body)  # the ledger names its postings
        verdict = self.oracle.apply(command)
        if answer.accepted != (verdict == ACCEPTED):
            raise Disagreement(
                f"{command!r}: the service answered {answer.status} {answer.body!r}, the oracle "
                f"{'accepts it' if verdict == ACCEPTED else verdict}"
            )
        assert answer.status < 500, (command, answer)
        if answer.accepted:
            self.stack.remember(command, answer)
            if isinstance(command, c.Spend):
                self.spent.append((command.expenditure_id, command.code))
            elif isinstance(command, c.ImportExpenditures):
                self.spent += [(row.expenditure_id, command.code) for row in command.rows]
        self.refused = isinstance(verdict, Refused)
        self.last = (command, request, key, answer)
        self.stack.sync()
        self.marks.append(now())
        return answer

    def figures(self) -> dict[str, Any]:
        """The published figures at this moment, of both years and the bridging subsidy."""
        found = {str(year): without_offsets(self.stack.read(f"/v1/balances/{year}")) for year in YEARS}
        found["bridge"] = without_offsets(self.stack.read("/v1/bridge"))
        return found

    # -- the opening: frames, the bridging frame and its libraries ------------------------------------

    @initialize(awards_2024=st.dictionaries(codes, st.integers(1_000_00, 40_000_00), min_size=1),
                awards_2025=st.dictionaries(codes, st.integers(1_000_00, 30_000_00)), advances=st.booleans())
    def opening(self, awards_2024: dict[str, int], awards_2025: dict[str, int], advances: bool) -> None:
        """The frames, the bridging frame and its libraries, and annexes of awards: most commands need them."""
        frames = ((2024, 200_000_00, date(2023, 12, 1)), (2025, 150_000_00, date(2024, 12, 1)))
        for year, frame_cents, decided_on in frames:
            self.step(lambda at, y=year, f=frame_cents, d=decided_on: c.SetFrame(y, f, d, at))
        self.step(lambda at: c.SetBridgeFrame(90_000_00, BRIDGE_DEADLINE, at))
        for i, library in enumerate(LIBRARIES):
            self.step(lambda at, lib=library, n=i: c.RegisterLibrary(lib, f"Bibliotheek {n}", at))
        for year, awards in ((2024, awards_2024), (2025, awards_2025)):
            if awards:
                self.import_annex(year, awards, date(year, 1, 15))
        for code, cents in sorted(awards_2024.items()) if advances else ():
            self.step(lambda at, code=code, cents=cents: c.PayAdvance(2024, code, cents, date(2024, 1, 31), at))

    # -- payments ------------------------------------------------------------------------------------

    @rule(year=years, frame_cents=amounts, decided_on=days)
    def set_frame(self, year: int, frame_cents: int, decided_on: date) -> None:
        self.step(lambda at: c.SetFrame(year, frame_cents * 10, decided_on, at))

    @rule(year=years, frame_cents=st.integers(50_000_00, 400_000_00), decided_on=days)
    def amend_frame(self, year: int, frame_cents: int, decided_on: date) -> None:
        self.step(lambda at: c.AmendFrame(year, frame_cents, decided_on, at))

    @rule(year=years, code=codes, amount_cents=amounts, awarded_on=days)
    def award(self, year: int, code: str, amount_cents: int, awarded_on: date) -> None:
        self.step(lambda at: c.Award(year, code, code, amount_cents, awarded_on, at))

    @rule(year=years, annex=st.dictionaries(codes, amounts, min_size=1, max_size=4), awarded_on=days)
    def import_annex(self, year: int, annex: dict[str, int], awarded_on: date) -> None:
        rows = tuple(c.AnnexRow(code, code, cents) for code, cents in sorted(annex.items()))
        self.step(lambda at: c.ImportAnnex(year, rows, awarded_on, at))

    @rule(year=years, code=codes, amount_cents=due, paid_on=days)
    def pay_advance(self, year: int, code: str, amount_cents: int | None, paid_on: date) -> None:
        grant = self.oracle.grants.get((year, code))
        if amount_cents is None:
            amount_cents = grant.award_cents - grant.paid_cents if grant else 1
        self.step(lambda at: c.PayAdvance(year, code, amount_cents, paid_on, at))

    @rule(year=years, code=codes, reported_spending_cents=amounts, settled_on=days,
          lower_by=st.sampled_from((0, 0, 0, 100)), reason=st.booleans(), corrects=st.booleans())
    def settle(self, year: int, code: str, reported_spending_cents: int, settled_on: date, lower_by: int,
               reason: bool, corrects: bool) -> None:
        grant = self.oracle.grants.get((year, code))
        settled_cents = None
        if lower_by and grant is not None:
            settled_cents = min(reported_spending_cents, grant.award_cents) - lower_by
        self.step(lambda at: c.Settle(year, code, reported_spending_cents, settled_on, at, settled_cents,
                                      "lower: the report misses receipts" if reason else None, corrects))

    @rule(year=years, code=codes, amount_cents=due, issued_on=days)
    def issue_reclaim(self, year: int, code: str, amount_cents: int | None, issued_on: date) -> None:
        if amount_cents is None:
            amount_cents = self.oracle.reclaim_due(year, code) or 1
        self.step(lambda at: c.IssueReclaim(year, code, amount_cents, issued_on, at))

    @rule(year=years, code=codes, amount_cents=due, received_on=days)
    def receive_reclaim(self, year: int, code: str, amount_cents: int | None, received_on: date) -> None:
        grant = self.oracle.grants.get((year, code))
        if amount_cents is None:
            amount_cents = (grant.reclaim_issued_cents - grant.reclaim_received_cents if grant else 0) or 1
        self.step(lambda at: c.ReceiveReclaim(year, code, amount_cents, received_on, at))

    @rule(code=codes, successor=codes, effective_on=st.sampled_from(
        (date(2024, 1, 1), date(2024, 7, 1), date(2025, 1, 1), date(2025, 4, 1))))
    def merge(self, code: str, successor: str, effective_on: date) -> None:
        self.step(lambda at: c.Merge(code, successor, effective_on, at))

    # -- ledger ----------------------------------------------------------------------------------------

    @rule(code=codes, when=year_and_day, category=categories, amount_cents=amounts, library=libraries,
          as_holder=st.booleans())
    def spend(self, code: str, when: tuple[int, date], category: str, amount_cents: int, library: str,
              as_holder: bool) -> None:
        year, booked_on = when
        code = self.holder(year, code) if as_holder else code
        self.step(lambda at: c.Spend("to-be-named", code, year, category, amount_cents, booked_on, at, library))

    @rule(code=codes, lines=rows, as_holder=st.booleans())
    def import_expenditures(self, code: str, lines: list[tuple[tuple[int, date], str, int, str]],
                            as_holder: bool) -> None:
        code = self.holder(lines[0][0][0], code) if as_holder else code
        expenditure_rows = tuple(
            c.ExpenditureRow(f"line-{n}", year, category, cents, booked_on, library)
            for n, ((year, booked_on), category, cents, library) in enumerate(lines)
        )
        self.step(lambda at: c.ImportExpenditures(code, expenditure_rows, at))

    @rule(index=st.integers(0, 50), booked_on=st.none() | days)
    def reverse(self, index: int, booked_on: date | None) -> None:
        if self.spent:
            expenditure_id, code = self.spent[index % len(self.spent)]
        else:  # nothing recorded yet: an expenditure nobody knows
            expenditure_id, code = "00000000-0000-4000-8000-000000000000", CODES[0]
        self.step(lambda at: c.Reverse(expenditure_id, at, booked_on), expenditure_code=code)

    @rule(code=codes, year=years, closed_on=days)
    def close_year(self, code: str, year: int, closed_on: date) -> None:
        self.step(lambda at: c.CloseYear(code, year, closed_on, at))

    @rule(code=codes, accounts_year=years, grant_year=years, final_account=st.booleans())
    def declare_sisa(self, code: str, accounts_year: int, grant_year: int, final_account: bool) -> None:
        self.step(lambda at: c.DeclareSisa(code, accounts_year, grant_year, final_account, at))

    # -- bridge --------------------------------------------------------------------------------------

    @rule(library=libraries, amount_cents=amounts)
    def bridge_grant(self, library: str, amount_cents: int) -> None:
        self.step(lambda at: c.SetBridgeGrant(library, amount_cents, at))

    @rule(library=libraries, amount_cents=due, paid_on=days)
    def bridge_pay(self, library: str, amount_cents: int | None, paid_on: date) -> None:
        if amount_cents is None:
            lib = self.oracle.libraries[library]
            amount_cents = (lib.granted_cents - lib.paid_cents) or 1
        self.step(lambda at: c.PayBridge(library, amount_cents, paid_on, at))

    @rule(library=libraries, spent_cents=due, submitted_on=days)
    def bridge_account(self, library: str, spent_cents: int | None, submitted_on: date) -> None:
        if spent_cents is None:
            spent_cents = self.oracle.libraries[library].paid_cents // 2
        self.step(lambda at: c.SubmitBridgeAccount(library, spent_cents, submitted_on, at))

    # -- retries with the same Idempotency-Key ---------------------------------------------------------

    @precondition(lambda self: self.last is not None)
    @rule()
    def retry_the_same_request(self) -> None:
        """The same key and request: the first answer again, and nothing stored a second time."""
        assert self.last is not None
        command, request, key, first = self.last
        stored = self.stack.stored()
        again = self.stack.call(request, key)
        assert (again.status, again.body) == (first.status, first.body), (command, first, again)
        assert self.stack.stored() == stored, f"a retry of {command!r} stored events"
        self.refused = True  # nothing changed: the invariants check that the figures did not move
        self.stored_before = stored

    @precondition(lambda self: self.last is not None and self.last[3].accepted
                  and isinstance(self.last[1].json, dict) and "amount_cents" in self.last[1].json)
    @rule()
    def retry_the_key_with_another_amount(self) -> None:
        """The same key, another amount: refused with 409 naming the key, nothing stored."""
        assert self.last is not None
        command, request, key, _first = self.last
        other = Request(request.service, request.method, request.path, request.headers,
                        {**request.json, "amount_cents": request.json["amount_cents"] + 1}, request.csv, request.query)
        stored = self.stack.stored()
        answer = self.stack.call(other, key)
        assert answer.status == 409, (command, answer)
        assert "Idempotency-Key" in answer.body["errors"], (command, answer)
        assert self.stack.stored() == stored, f"another request with the key of {command!r} stored events"
        self.refused = True
        self.stored_before = stored

    # -- every figure at a random point in time ---------------------------------------------------------

    @rule(as_of=st.none() | days, mark=st.none() | st.integers(0, 200))
    def compare_at_a_random_point(self, as_of: date | None, mark: int | None) -> None:
        at = Point(as_of, self.marks[mark % len(self.marks)] if mark is not None and self.marks else None)
        found = differences(self.oracle, HttpFigures(self.stack), at, YEARS)
        if found:
            raise Disagreement(f"at {at}:\n" + "\n".join(found[:12]))
        self.compare_csv_exports(at)
        self.refused = False

    def compare_csv_exports(self, at: Point) -> None:
        point = PointInTime(at.as_of, at.known_at)
        for year in YEARS:
            expected = self.oracle.national(year, at)["municipalities"]
            text = self.stack.read(f"/v1/balances/{year}.csv", point)
            csv_rows = {row["municipality_code"]: row for row in csv.DictReader(io.StringIO(text))}
            for code in sorted(set(expected) | set(csv_rows)):
                mine = expected.get(code) or self.oracle.balance("GM0000", year, at)
                flat = flat_money(mine)
                theirs = {k: int(csv_rows[code][k]) for k in flat} if code in csv_rows else flat
                if theirs != flat:
                    raise Disagreement(f"at {at}: /v1/balances/{year}.csv {code}: ledger {theirs}, oracle {flat}")
            for code in sorted(self.oracle.codes()):
                text = self.stack.read(f"/v1/municipalities/{code}/balances/{year}.csv", point)
                (row,) = list(csv.DictReader(io.StringIO(text)))
                flat = flat_money(self.oracle.balance(code, year, at))
                theirs = {k: int(row[k]) for k in flat}
                if theirs != flat:
                    raise Disagreement(f"at {at}: balances {code} {year}.csv: ledger {theirs}, oracle {flat}")

    @rule(as_of=st.none() | days, mark=st.none() | st.integers(0, 200))
    def audit_replay_at_a_random_point(self, as_of: date | None, mark: int | None) -> None:
        """The audit's replay of the topics answers as the oracle does."""
        at = Point(as_of, self.marks[mark % len(self.marks)] if mark is not None and self.marks else None)
        replay = replay_topics(self.stack.settings, as_of=at.as_of, known_at=at.known_at)
        assert not replay.stats.problems, replay.stats.problems
        found = differences(self.oracle, ReplayFigures(replay), at, YEARS, bridge=False)
        if found:
            raise Disagreement(f"audit replay at {at}:\n" + "\n".join(found[:12]))
        self.refused = False

    # -- helpers and invariants ------------------------------------------------------------------------

    def holder(self, year: int, code: str) -> str:
        grant = self.oracle.grants.get((year, code))
        return grant.holder if grant is not None else code

    @invariant()
    def after_every_step(self) -> None:
        """A refused command stored nothing and moved no figure; the figures now are the oracle's; the money
        is conserved. One read of the published figures serves all three."""
        published = self.figures()
        if self.refused:
            assert self.stack.stored() == self.stored_before, f"refused, yet stored: {self.last}"
            assert published == self.published, f"refused, yet the figures moved: {self.last}"
        self.published = published
        found = differences(self.oracle, Published(published), Point(), YEARS, per_municipality=False)
        if found:
            raise Disagreement("after the last step:\n" + "\n".join(found[:12]))
        self.money_is_conserved()

    def money_is_conserved(self) -> None:
        """Nothing created or lost between award, payment, spending and reclaim, per the published figures."""
        for year in YEARS:
            national = self.published[str(year)]
            rows = national["municipalities"]
            for key in BALANCE_KEYS:
                if key != "spent_by_category":
                    assert national["totals"][key] == sum(r[key] for r in rows), (year, key)
            for r in rows:
                where = (year, r["municipality_code"])
                assert r["advance_paid_cents"] <= r["awarded_cents"], f"paid above the award: {where}"
                assert r["unspent_cents"] == r["advance_paid_cents"] - r["spent_cents"], where
                assert r["spent_cents"] == sum(r["spent_by_category"].values()), where
                assert 0 <= r["reclaim_received_cents"] <= r["reclaim_issued_cents"] <= r["advance_paid_cents"], where
            assert national["frame_unawarded_cents"] == national["frame_cents"] - national["totals"]["awarded_cents"]
            assert national["awarded_within_frame"] is True, year
            grants = self.stack.clients["payments"].get(f"/v1/years/{year}/grants",
                                                        headers=self.stack.tokens.headers("ministry"))
            assert grants.status_code == 200, grants.json
            listed = grants.json["grants"] if isinstance(grants.json, dict) else grants.json
            assert national["totals"]["awarded_cents"] == sum(g["amount_cents"] for g in listed), year
            assert national["totals"]["advance_paid_cents"] == sum(g["paid_cents"] for g in listed), year
        bridge = self.published["bridge"]
        for library in bridge["libraries"]:
            assert library["paid_cents"] <= library["granted_cents"], library
            if library["account_status"] in ("on_time", "late"):
                assert library["settled_cents"] + library["reclaim_issued_cents"] == library["paid_cents"], library
        assert bridge["totals"]["granted_cents"] <= bridge["frame_cents"]


def flat_money(balance: dict[str, Any]) -> dict[str, int]:
    flat = {k: v for k, v in balance.items() if k in BALANCE_KEYS and k != "spent_by_category"}
    flat.update({f"spent_{cat}_cents": cents for cat, cents in balance["spent_by_category"].items()})
    return flat


def with_given_ids(command: c.Spend | c.ImportExpenditures, body: Any) -> c.Command:
    """The command as the ledger recorded it: with the expenditure ids it gave."""
    if isinstance(command, c.Spend):
        return c.Spend(body["expenditure_id"], command.code, command.grant_year, command.category,
                       command.amount_cents, command.booked_on, command.known_at, command.library_id)
    ids = [e["expenditure_id"] for e in body["expenditures"]]
    assert len(ids) == len(command.rows), body
    return c.ImportExpenditures(command.code, tuple(
        c.ExpenditureRow(i, r.grant_year, r.category, r.amount_cents, r.booked_on, r.library_id)
        for i, r in zip(ids, command.rows, strict=True)
    ), command.known_at)


@dataclass(frozen=True)
class Published:
    """The national and bridge figures read once after a step, for ``compare.differences`` at ``Point()``."""

    figures: dict[str, Any]

    def national(self, year: int, at: PointInTime) -> Any:
        return self.figures[str(year)]

    def balances(self, code: str, year: int, at: PointInTime) -> Any:
        raise AssertionError("per municipality: read at a random point")

    sisa = balances

    def bridge(self, at: PointInTime) -> Any:
        return self.figures["bridge"]


class ReplayFigures:
    """The figures ``compare.differences`` reads, answered by the audit's replay (one point per replay)."""

    def __init__(self, replay: Any) -> None:
        self.replay = replay

    def national(self, year: int, at: PointInTime) -> Any:
        return self.replay.national(year)

    def balances(self, code: str, year: int, at: PointInTime) -> Any:
        return self.replay.balances(code, year)

    def sisa(self, code: str, year: int, at: PointInTime) -> Any:
        return self.replay.sisa(code, year)

    def bridge(self, at: PointInTime) -> Any:
        raise AssertionError("the replay's bridge figures are not compared")
