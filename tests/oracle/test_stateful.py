"""Random histories through the real services' HTTP APIs against the oracle (issue 20, Must show 2).

``make test`` runs ``HISTORIES`` histories of at most ``STEPS`` steps, the same ones every run
(derandomized: CI must not turn red by chance); ``make resilience`` runs many more, random ones
(tests/resilience/test_oracle_histories.py). The machine and its rules: ``tests/oracle/machine.py``.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from kafka import KafkaAdminClient

from tests.oracle.machine import OracleMachine
from tests.support.infra import KafkaInfo

HISTORIES = 3
"""Histories a run of ``make test`` drives (about N s on the 2-core machine)."""
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
