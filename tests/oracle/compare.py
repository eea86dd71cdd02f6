"""What the real projection answers, next to the oracle's figures, for one recorded history."""

from __future__ import annotations

from typing import Any, Protocol

from services.common.adapters.sql import create_sql_engine
from services.ledger.read_side import LedgerQueries, PointInTime, balances_projection
from tests.oracle.envelopes import Recorder
from tests.oracle.model import Oracle, Point

BALANCE_KEYS = (
    "awarded_cents", "advance_paid_cents", "spent_cents", "spent_by_category", "unspent_cents",
    "spent_beyond_award_cents", "settled_cents", "reclaim_issued_cents", "reclaim_received_cents",
)


def project(recorder: Recorder, url: str) -> LedgerQueries:
    """The history's envelopes through the real projection into a fresh view at ``url``."""
    engine = create_sql_engine(url)
    projection = balances_projection()
    projection.create_tables(engine)
    with engine.begin() as connection:
        for topic, _key, envelope in recorder.streams.sent:
            projection.apply(connection, topic, envelope)
    queries = LedgerQueries(engine)
    today = recorder.oracle.today
    queries.today = lambda: today
    return queries


def live_point(at: Point) -> PointInTime:
    return PointInTime(as_of=at.as_of, known_at=at.known_at)


class Figures(Protocol):
    """What answers the figures: the view's ``LedgerQueries``, its HTTP API, or the audit replay."""

    def national(self, year: int, at: PointInTime) -> Any: ...
    def balances(self, code: str, year: int, at: PointInTime) -> Any: ...
    def sisa(self, code: str, year: int, at: PointInTime) -> Any: ...
    def bridge(self, at: PointInTime) -> Any: ...


def differences(oracle: Oracle, queries: Figures, at: Point, years: tuple[int, ...], *,
                per_municipality: bool = True, bridge: bool = True) -> list[str]:
    """Every published figure where the ledger and the oracle disagree, named (``per_municipality``:
    also each code's balance and SiSa answers; ``bridge``: also the bridging subsidy)."""
    found: list[str] = []

    def check(where: str, live: Any, expected: Any) -> None:
        if live != expected:
            found.append(f"{where}: ledger {live!r}, oracle {expected!r}")

    point = live_point(at)
    for year in years:
        national = queries.national(year, point)
        expected = oracle.national(year, at)
        for key in ("frame_cents", "frame_unawarded_cents", "awarded_within_frame", "settlements_differing_from_books",
                    "sisa_late"):
            check(f"national {year} {key}", national[key], expected[key])
        check(f"national {year} totals", {k: national["totals"][k] for k in BALANCE_KEYS}, expected["totals"])
        check(f"national {year} library_funding_received",
              {x["library_id"]: x["received_cents"] for x in national["library_funding_received"]},
              expected["library_funding_received"])
        rows = {m["municipality_code"]: m for m in national["municipalities"]}
        for code in sorted(set(rows) | set(expected["municipalities"])):
            keys = (*BALANCE_KEYS, "settlement_reported_spending_cents", "settlement_differs_from_books")
            # a municipality without figures of the year may be listed with zeros, or not at all
            nothing = {**oracle.balance("GM0000", year, at), "settlement_reported_spending_cents": None,
                       "settlement_differs_from_books": None}
            theirs = {k: rows[code][k] for k in keys} if code in rows else nothing
            mine = expected["municipalities"].get(code, nothing)
            check(f"national {year} {code}", theirs, mine)
        for code in sorted(oracle.codes()) if per_municipality else ():
            live = queries.balances(code, year, point)
            check(f"balance {code} {year}", {k: live[k] for k in BALANCE_KEYS}, oracle.balance(code, year, at))
            check(f"balance {code} {year} recorded_after_close_count", live["recorded_after_close_count"], 0)
            sisa = queries.sisa(code, year, point)
            lines = [{k: line[k] for k in ("grant_year", "besteding_jaar_t_cents", "cumulatieve_bestedingen_cents",
                                             "eindverantwoording", "late")} for line in sisa["lines"]]
            mine_sisa = oracle.sisa(code, year, at)
            check(f"sisa {code} {year} lines", lines, mine_sisa["lines"])
            check(f"sisa {code} {year} late", sisa["late"], mine_sisa["late"])
    if not bridge:
        return found
    live_bridge = queries.bridge(point)
    expected_bridge = oracle.bridge(at)
    for key in ("frame_cents", "frame_ungranted_cents", "totals", "accounts_late", "accounts_missing"):
        check(f"bridge {key}", live_bridge[key], expected_bridge[key])
    for library in live_bridge["libraries"]:
        lib = library["library_id"]
        check(f"bridge {lib}", {k: library[k] for k in ("granted_cents", "paid_cents", "settled_cents",
                                                         "reclaim_issued_cents")},
              expected_bridge["libraries"].get(lib))
        check(f"bridge {lib} status", library["account_status"], expected_bridge["statuses"].get(lib))
    return found
