"""The real ledger projection against the oracle: random histories, every figure the view answers.

No HTTP and no broker: the events the services would record for the commands the oracle accepts go
through ``BalancesProjection.apply`` into a fresh SQLite view, and ``LedgerQueries`` answers the
balances, the national view, SiSa and the bridging subsidy at several points in time.
Where the two disagreed and the documents said the ledger was wrong, a test below keeps the smallest
history that showed it, naming the rule; each failed before its fix (a strict xfail until then).
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from contracts.canonical import canonical_json
from services.audit.replay import Replay
from services.ledger.read_side import PointInTime
from tests.oracle import commands as c
from tests.oracle.compare import differences, live_point, project
from tests.oracle.envelopes import Recorder
from tests.oracle.histories import YEARS, histories
from tests.oracle.model import ACCEPTED, Point
from tests.oracle.test_model import EUR, A, B, at, d

EXAMPLES = 20
"""Histories a run of ``make test`` compares (about 6 s on the 2-core machine)."""


def compared(recorder: Recorder, points: list[Point]) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        queries = project(recorder, f"sqlite:///{folder}/view.db")
        found = [f"{p}: {diff}" for p in points for diff in differences(recorder.oracle, queries, p, YEARS)]
        queries.engine.dispose()
    return found


# The same histories every run (derandomize): CI must not turn red by chance. Random runs (derandomize=False)
# find what these do not: the settlement of a merged municipality below came from one.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(histories(max_steps=30))
def test_the_ledger_answers_every_figure_as_the_oracle_does(history: list[c.Command]) -> None:
    recorder = Recorder()
    for command in history:
        recorder.apply(command)
    moments = [command.known_at for command in history]
    points = [Point(), Point(date(2024, 6, 30)), Point(date(2024, 12, 31)), Point(known_at=moments[len(moments) // 2]),
              Point(date(2025, 3, 1), moments[(2 * len(moments)) // 3]), Point(BRIDGE_DAY + timedelta(days=1))]
    found = compared(recorder, points)
    assert not found, "\n".join(found[:10])


BRIDGE_DAY = date(2024, 9, 1)


def recorded(commands: list[c.Command]) -> Recorder:
    recorder = Recorder()
    for command in commands:
        assert recorder.apply(command) == ACCEPTED, command
    return recorder


def test_national_spending_beyond_award_is_the_sum_of_the_municipalities() -> None:
    """A spends 500.00 beyond its award, B spends nothing of its own: nationally 500.00 was spent beyond
    an award. The ledger's national total answered 0 (the national spending against the national award),
    which hid one municipality's overspending behind another's unspent award; a total of a column
    is the sum of the column (OAS NationalOut.totals is the MoneyOut of the rows). Fixed 2026-12-01."""
    recorder = recorded([
        c.SetFrame(2024, 100_000 * EUR, d("2023-12-01"), at("2023-12-01")),
        c.Award(2024, A, A, 1_000 * EUR, d("2024-01-10"), at("2024-01-10")),
        c.Award(2024, B, B, 1_000 * EUR, d("2024-01-10"), at("2024-01-10", "12:00:01")),
        c.Spend("00000000-0000-4000-8000-000000000001", A, 2024, "promotion", 1_500 * EUR, d("2024-03-01"),
                at("2024-03-02")),
    ])
    assert recorder.oracle.national(2024)["totals"]["spent_beyond_award_cents"] == 500 * EUR
    with tempfile.TemporaryDirectory() as folder:
        queries = project(recorder, f"sqlite:///{folder}/view.db")
        assert queries.balances(A, 2024, PointInTime())["spent_beyond_award_cents"] == 500 * EUR  # per municipality
        assert queries.national(2024, PointInTime())["totals"]["spent_beyond_award_cents"] == 500 * EUR
        queries.engine.dispose()



def replayed(recorder: Recorder, at: Point) -> Replay:
    """The audit replay of the history's envelopes at ``at``, in memory, grants before expenditures (as
    ``Replay.read`` reads the topics)."""
    replay = Replay(as_of=at.as_of, known_at=at.known_at, today=recorder.oracle.today)
    for topic, _key, envelope in sorted(recorder.streams.sent, key=lambda sent: "expenditures" in sent[0]):
        replay.feed(topic, canonical_json(envelope))
    replay.finish()
    return replay


def test_a_grant_figure_decided_after_the_effective_date_moves_on_its_own_day() -> None:
    """A merges into B effective 1 January 2024 (recorded on 20 January); A's 2024 award was decided on
    10 February and its advance is paid on 1 March. On 1 February nobody holds that award yet. The ledger
    moved both on the effective date, so A showed an award of -1,000.00 and B one of 1,000.00 that was not
    yet decided; money appeared before it existed. docs/decisions.md (Mergers) moves spending on the later
    of its day and the effective date; the same rule for the grant's own figures keeps every code's award
    >= 0. The audit replay shares ``effects_of``, so it must answer the same at every point."""
    recorder = recorded([
        c.SetFrame(2024, 100_000 * EUR, d("2023-12-01"), at("2023-12-01")),
        c.Award(2024, B, B, 2_000 * EUR, d("2024-01-05"), at("2024-01-05")),
        c.Award(2024, A, A, 1_000 * EUR, d("2024-02-10"), at("2024-01-15")),
        c.PayAdvance(2024, A, 400 * EUR, d("2024-03-01"), at("2024-01-16")),
        c.Merge(A, B, d("2024-01-01"), at("2024-01-20")),
    ])
    # (A awarded, A advanced, B awarded, B advanced) at each point, worked out by hand from the dates above
    expected = {
        Point(d("2024-02-01")): (0, 0, 2_000 * EUR, 0),  # the ledger: -1,000.00, -400.00, 3,000.00, 400.00
        Point(d("2024-02-10")): (0, 0, 3_000 * EUR, 0),  # the ledger: B's advance of 400.00 already
        Point(d("2024-03-01")): (0, 0, 3_000 * EUR, 400 * EUR),
        Point(known_at=at("2024-01-19")): (1_000 * EUR, 400 * EUR, 2_000 * EUR, 0),  # the merger not yet known
        Point(d("2024-02-10"), at("2024-01-19")): (1_000 * EUR, 0, 2_000 * EUR, 0),
    }
    with tempfile.TemporaryDirectory() as folder:
        queries = project(recorder, f"sqlite:///{folder}/view.db")
        for point, figures in expected.items():
            mine = tuple(recorder.oracle.balance(code, 2024, point)[key]
                         for code in (A, B) for key in ("awarded_cents", "advance_paid_cents"))
            assert mine == figures, point
            live = {code: queries.balances(code, 2024, live_point(point)) for code in (A, B)}
            assert tuple(live[code][key] for code in (A, B) for key in ("awarded_cents", "advance_paid_cents")) \
                == figures, point
            replay = replayed(recorder, point)
            for code in (A, B):
                assert replay.balances(code, 2024) == {k: v for k, v in live[code].items() if k != "offsets"}, point
        queries.engine.dispose()


def test_the_national_view_counts_a_late_account_of_a_municipality_without_figures_of_the_year() -> None:
    """A holds a 2024 grant and nothing of 2025. Its SiSa account of 2025 lists the 2024 grant, undeclared
    past 15 July 2026: late, as the ledger's own SiSa answer for A says. The national view of 2025 listed
    no row for A and counted 0 late accounts, so BZK's list for attention missed it (docs/api/README.md,
    SiSa: "counts the late ones"; OAS NationalOut.sisa_late: municipalities whose account is late). Now A
    is listed, with no figures of 2025, its account late, and counted; the audit replay answers the same."""
    recorder = recorded([
        c.SetFrame(2024, 100_000 * EUR, d("2023-12-01"), at("2023-12-01")),
        c.Award(2024, A, A, 1_000 * EUR, d("2024-01-10"), at("2024-01-10")),
    ])
    assert recorder.oracle.sisa(A, 2025)["late"] is True
    with tempfile.TemporaryDirectory() as folder:
        queries = project(recorder, f"sqlite:///{folder}/view.db")
        assert queries.sisa(A, 2025, PointInTime())["late"] is True  # the municipality's own answer: late
        national = queries.national(2025, PointInTime())
        assert national["sisa_late"] == 1  # the ledger: 0
        [row] = national["municipalities"]  # the ledger: none
        assert (row["municipality_code"], row["awarded_cents"], row["spent_cents"]) == (A, 0, 0)
        assert (row["settlement_reported_spending_cents"], row["settlement_differs_from_books"]) == (None, None)
        assert row["sisa"] == {"accounts_year": 2025, "deadline": "2026-07-15", "declared": False, "late": True}
        # before the deadline A's account is listed too, not late yet
        before = queries.national(2025, PointInTime(as_of=d("2026-07-15")))
        assert (before["sisa_late"], [m["sisa"]["late"] for m in before["municipalities"]]) == (0, [False])
        # a grant year after the accounts year has no line: nobody is listed in 2023
        assert queries.national(2023, PointInTime())["municipalities"] == []
        assert replayed(recorder, Point()).national(2025) == {k: v for k, v in national.items() if k != "offsets"}
        queries.engine.dispose()


def settlement_flags(national: dict[str, Any]) -> dict[str, tuple[int | None, bool | None]]:
    return {m["municipality_code"]: (m["settlement_reported_spending_cents"], m["settlement_differs_from_books"])
            for m in national["municipalities"]}


@pytest.mark.parametrize("reported_euros", [600, 0])
def test_a_settlement_passes_with_its_grant_and_the_predecessor_holds_none(reported_euros: int) -> None:
    """A settles its 2024 grant on 1 May 2025 and merges into B from 1 July 2025. From then on the settlement is B's,
    as the grant is (docs/decisions.md, Mergers: a merger passes the grant's award, advances, settlements
    and reclaims), and A holds none: its national row shows null, as before settling (OAS
    MunicipalityBalanceOut.settlement_reported_spending_cents: "null before settling"). The ledger
    showed A a settlement made on 0 reported spending that agreed with its books. A random history of
    the comparison shrank to this (there GM0363 merged into GM0014). A settlement of 0 (A spent nothing) is a
    settlement too: it passes to B, where the ledger lost it (nothing moved, so B showed none and A kept it).
    A's advance keeps the grant open after settling (a reclaim is due): a closed grant would stay with A
    (tests/oracle/test_model.py, a closed grant stays)."""
    spent = reported_euros * EUR
    recorder = recorded([
        c.SetFrame(2024, 100_000 * EUR, d("2023-12-01"), at("2023-12-01")),
        c.Award(2024, A, A, 1_000 * EUR, d("2024-01-10"), at("2024-01-10")),
        c.Award(2024, B, B, 2_000 * EUR, d("2024-01-10"), at("2024-01-10", "12:00:01")),
        # paid, so settling leaves a reclaim due and the grant open: a closed grant stays (OAS MergerResult.closed)
        c.PayAdvance(2024, A, 1_000 * EUR, d("2024-01-31"), at("2024-01-31")),
        *([c.Spend("00000000-0000-4000-8000-000000000001", A, 2024, "promotion", spent, d("2024-03-01"),
                   at("2024-03-02"))] if spent else []),
        c.Settle(2024, A, spent, d("2025-05-01"), at("2025-05-02")),  # a settlement follows its grant year
        c.Merge(A, B, d("2025-07-01"), at("2025-07-05")),
    ])
    expected = {  # (reported, differs) per code, worked out by hand
        Point(d("2025-06-30")): {A: (spent, False), B: (None, None)},  # before the effective date: A's own
        Point(known_at=at("2025-07-04")): {A: (spent, False), B: (None, None)},  # the merger not yet known
        Point(): {A: (None, None), B: (spent, False)},  # B's spending is A's moved: the same as reported
    }
    with tempfile.TemporaryDirectory() as folder:
        queries = project(recorder, f"sqlite:///{folder}/view.db")
        for point, flags in expected.items():
            mine = recorder.oracle.national(2024, point)["municipalities"]  # lists no row of zeros
            nothing = {"settlement_reported_spending_cents": None, "settlement_differs_from_books": None}
            assert {code: (mine.get(code, nothing)["settlement_reported_spending_cents"],
                           mine.get(code, nothing)["settlement_differs_from_books"]) for code in (A, B)} == flags, point
            national = queries.national(2024, live_point(point))
            assert settlement_flags(national) == flags, point  # the ledger, from 1 July: A (0, False), B as above
            assert national["settlements_differing_from_books"] == 0
            assert replayed(recorder, point).national(2024) == {k: v for k, v in national.items() if k != "offsets"}
        queries.engine.dispose()
