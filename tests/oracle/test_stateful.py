"""Random histories through the real services' HTTP APIs against the oracle (issue 20, Must show 2).

``make test`` runs ``HISTORIES`` histories of at most ``STEPS`` steps, the same ones every run
(derandomized: CI must not turn red by chance); ``make resilience`` runs many more, random ones
(tests/resilience/test_oracle_histories.py, ``IDO_ORACLE_HISTORIES``). The machine and its rules:
``tests/oracle/machine.py``. A failing history is printed as steps (``state.award(...)``): pasted
below ``OracleMachine.use(...)`` in a test, as the two scripts here are, they replay it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from kafka import KafkaAdminClient

from tests.oracle.machine import OracleMachine
from tests.support.infra import KafkaInfo

HISTORIES = 4
"""Histories a run of ``make test`` drives: 35-51 s measured on the 2-core machine (each script below ~5 s)."""
STEPS = 20


def run_histories(kafka: KafkaInfo, admin: KafkaAdminClient, folder: Path, *, histories: int, steps: int,
                  derandomize: bool) -> None:
    OracleMachine.use(kafka, admin, folder)
    run_state_machine_as_test(OracleMachine, settings=settings(
        max_examples=histories, stateful_step_count=steps, deadline=None, derandomize=derandomize,
        suppress_health_check=list(HealthCheck), database=None if derandomize else settings.default.database,
    ))


def test_random_histories_through_the_services_agree_with_the_oracle(
    kafka: KafkaInfo, kafka_admin: KafkaAdminClient, tmp_path: Path
) -> None:
    run_histories(kafka, kafka_admin, tmp_path, histories=HISTORIES, steps=STEPS, derandomize=True)


def test_an_account_spending_more_than_was_paid(
    kafka: KafkaInfo, kafka_admin: KafkaAdminClient, tmp_path: Path
) -> None:
    """Found by the random histories (shrunk by hand to this script). A library granted 5,000.00 and paid
    nothing submits its final account: spent 114.92. Judged (docs/decisions.md, "An account spending more
    than was paid"): the bridge takes it, as its README says; the account settles at what was paid (0),
    nothing is reclaimed and nothing paid out, so paid = settled + reclaimed. The ledger's figures (its
    ``bridge_settled`` was the reported 114.92) and the oracle (which refused the account) follow."""
    OracleMachine.use(kafka, kafka_admin, tmp_path)
    state = OracleMachine()
    try:
        state.opening(advances=False, awards_2024={"GM0363": 1_000_00}, awards_2025={})
        state.after_every_step()
        state.bridge_grant(amount_cents=5_000_00, library="NL-KVK-30000001")
        state.after_every_step()
        state.bridge_account(library="NL-KVK-30000001", spent_cents=114_92, submitted_on=date(2024, 8, 7))
        state.after_every_step()
    finally:
        state.teardown()


def test_a_bridging_reclaim_is_booked_on_the_day_the_bridge_issued_it(
    kafka: KafkaInfo, kafka_admin: KafkaAdminClient, tmp_path: Path
) -> None:
    """Found by the random histories (2026-12-03, shrunk by hand to this script). A library paid 16.77
    submits its final account dated 2025-05-26; the bridge reclaims the unspent 8.39 "at once ... issued
    today" (its README) and the ledger books the reclaim on that day, while the oracle booked it on the
    account's day: as of 2026-02-18 the ledger said 0 reclaimed, the oracle 8.39. The oracle now follows the
    README (docs/decisions.md, the oracle's rules), and the live stack's bridge runs on the oracle's today."""
    OracleMachine.use(kafka, kafka_admin, tmp_path)
    state = OracleMachine()
    library = "NL-KVK-41215098"
    try:
        state.opening(advances=False, awards_2024={"GM0363": 2_851_35}, awards_2025={})
        state.after_every_step()
        state.bridge_grant(amount_cents=8_362_49, library=library)
        state.after_every_step()
        state.bridge_pay(amount_cents=16_77, library=library, paid_on=date(2024, 4, 4))
        state.after_every_step()
        state.bridge_account(library=library, spent_cents=None, submitted_on=date(2025, 5, 26))
        state.after_every_step()
        for as_of in (date(2026, 2, 18), date(2026, 7, 31), date(2026, 8, 1), None):
            state.compare_at_a_random_point(as_of=as_of, mark=None)
    finally:
        state.teardown()


def test_a_second_reversal_with_a_new_key_is_refused(
    kafka: KafkaInfo, kafka_admin: KafkaAdminClient, tmp_path: Path
) -> None:
    """Found by the random histories (shrunk by hand to this script). GM0363 records an expenditure and
    reverses it; a second reversal of it, with a new Idempotency-Key and the same reason, answered 201 with
    the first reversal's ids. By the documents an expenditure is reversed once (docs/api/README.md, the
    reversal route): it is now 409 naming ``expenditure_id``, as the oracle says; only a retry with the
    first key answers 201 (docs/decisions.md, "A second reversal is refused")."""
    OracleMachine.use(kafka, kafka_admin, tmp_path)
    state = OracleMachine()
    try:
        state.opening(advances=True, awards_2024={"GM0363": 10_000_00}, awards_2025={})
        state.after_every_step()
        state.spend(as_holder=False, code="GM0363", when=(2024, date(2024, 3, 1)), category="promotion",
                    amount_cents=100_00, library="NL-KVK-41215098")
        state.after_every_step()
        state.reverse(booked_on=None, index=0)
        state.after_every_step()
        state.reverse(booked_on=None, index=0)
        state.after_every_step()
    finally:
        state.teardown()


def test_a_merger_of_a_municipality_whose_grants_are_all_closed(
    kafka: KafkaInfo, kafka_admin: KafkaAdminClient, tmp_path: Path
) -> None:
    """Found by the random histories (make resilience, 2026-12-05). GM0014's grant passes to GM0599 and is
    settled at what was paid (closed); GM0599 then merges into GM0363. Payments answered success and stored
    nothing, so the merger was unknown: an award to GM0599 was accepted, which the oracle refused as an award
    to a merged code. Such a merger is now refused in both (docs/decisions.md, "A merger that passes nothing on
    is refused"), and the award that follows is accepted in both."""
    OracleMachine.use(kafka, kafka_admin, tmp_path)
    state = OracleMachine()
    try:
        state.opening(awards_2024={"GM0363": 2_028_60, "GM0014": 36_287_99}, awards_2025={}, advances=True)
        state.after_every_step()
        state.merge(code="GM0014", effective_on=date(2024, 1, 1), successor="GM0599")
        state.after_every_step()
        state.settle(code="GM0014", corrects=False, lower_by=0, reason=True, reported_spending_cents=40_803_34,
                     settled_on=date(2025, 5, 23), year=2024)
        state.after_every_step()
        state.merge(code="GM0599", effective_on=date(2025, 1, 1), successor="GM0363")
        state.after_every_step()
        state.award(amount_cents=6_30, awarded_on=date(2025, 2, 8), code="GM0599", year=2024)
        state.after_every_step()
        state.compare_at_a_random_point(as_of=None, mark=None)
    finally:
        state.teardown()
