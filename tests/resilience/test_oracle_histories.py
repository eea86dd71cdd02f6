"""``make resilience``: many random histories through the three services against the oracle (issue 20).

``IDO_ORACLE_HISTORIES`` histories (default 25) of at most ``IDO_ORACLE_STEPS`` steps (default 40), random
each run; ``--hypothesis-seed=N`` reruns the same ones. Measured: 10 histories of up to 30 steps in 84 s
(seed 7), 20 of up to 40 in 507 s (seed 11), so the defaults take some 10-11 minutes. ``make test``
runs a few fixed ones (tests/oracle/test_stateful.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from tests.oracle.test_stateful import run_histories
from tests.support.infra import KafkaInfo


@pytest.mark.slow
def test_many_random_histories_through_the_services_agree_with_the_oracle(
    kafka: KafkaInfo, kafka_admin: KafkaAdminClient, tmp_path: Path
) -> None:
    run_histories(
        kafka, kafka_admin, tmp_path, histories=int(os.environ.get("IDO_ORACLE_HISTORIES", "25")),
        steps=int(os.environ.get("IDO_ORACLE_STEPS", "40")), derandomize=False,
    )
