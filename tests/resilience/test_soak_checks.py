"""The soak's measurements and judgements (issue 19, Must show 4), without servers: what ``make soak`` counts as
growth, how it reads lags from a metrics text, what it reads of a process from /proc, and its mix of writes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from tests.resilience.soak_mix import AMOUNT_BASE_CENTS, LIBRARIES, OneService, ThreeServices
from tests.resilience.soak_report import SoakFigures, render
from tests.resilience.soak_watch import (
    Baseline,
    LagSample,
    Usage,
    baseline_of,
    group_pids,
    lag_sample,
    metric_sum,
    recovery_s,
    resource_problems,
    steady,
    usage_of,
)
from tests.resilience.stack import MUNICIPALITIES
from tests.resilience.support import StackEnv

MIB = 2**20


def test_the_baseline_is_the_memory_at_the_warm_ups_end_and_the_most_files_and_threads_during_it() -> None:
    samples = [{"ledger": Usage(100 * MIB, 40, 12)}, {"ledger": Usage(90 * MIB, 45, 11)},
               {"ledger": Usage(95 * MIB, 42, 13), "kafka node 1": Usage(500 * MIB, 300, 80)}]
    assert baseline_of(samples) == Baseline(
        rss_bytes={"ledger": 95 * MIB, "kafka node 1": 500 * MIB},
        fds={"ledger": (40, 45), "kafka node 1": (300, 300)}, threads={"ledger": (11, 13), "kafka node 1": (80, 80)})


def test_a_process_under_a_new_pid_is_left_out_while_it_starts_the_others_are_kept_throughout() -> None:
    ledger, old_node, new_node = Usage(MIB, 40, 14, pid=10), Usage(MIB, 120, 98, pid=20), Usage(MIB, 50, 20, pid=30)
    samples = [(0.0, {"ledger": ledger, "kafka node 1": old_node}), (5.0, {"ledger": ledger}),
               (10.0, {"ledger": ledger, "kafka node 1": new_node}),
               (39.0, {"ledger": ledger, "kafka node 1": new_node}),
               (40.0, {"ledger": ledger, "kafka node 1": new_node})]
    assert steady(samples) == [{"ledger": ledger, "kafka node 1": old_node}, {"ledger": ledger}, {"ledger": ledger},
                               {"ledger": ledger}, {"ledger": ledger, "kafka node 1": new_node}]


def test_memory_up_to_a_quarter_above_the_warm_up_and_files_or_threads_within_its_swing_pass() -> None:
    baseline = Baseline({"ledger": 100 * MIB}, {"ledger": (40, 45)}, {"ledger": (13, 13)})
    assert resource_problems(baseline, {"ledger": Usage(125 * MIB, 50, 13)}) == []


def test_memory_above_a_quarter_files_or_threads_past_the_warm_ups_swing_and_a_new_process_each_fail() -> None:
    baseline = Baseline({"ledger": 100 * MIB}, {"ledger": (40, 45)}, {"ledger": (13, 13)})
    now = {"ledger": Usage(125 * MIB + 1, 51, 14, pid=os.getpid()), "ledger child 2": Usage(MIB, 1, 1)}
    problems = resource_problems(baseline, now)
    assert problems[0] == "ledger: RSS 125 MiB, more than 1.25 x its 100 MiB after warm-up"
    assert problems[1].startswith("ledger: 51 open files, more than 45 + 5 (40 to 45 during warm-up; now {")
    assert "'file': " in problems[1]
    assert problems[2:] == ["ledger: 14 threads, more than 13 + 0 (13 to 13 during warm-up)",
                            "ledger child 2: running, but not during the warm-up"]


METRICS = """# HELP ido_relay_lag_events Events stored but not yet acknowledged by Kafka.
# TYPE ido_relay_lag_events gauge
ido_relay_lag_events{service="ledger",topic="r1.ido.expenditures.v1"} 45.0
# TYPE ido_projector_lag_messages gauge
ido_projector_lag_messages{partition="0",projection="balances",service="ledger",topic="a"} 30.0
ido_projector_lag_messages{partition="1",projection="balances",service="ledger",topic="a"} 20.0
ido_relay_lag_events_other 7.0
"""


def test_a_metric_is_the_sum_of_its_samples_and_missing_when_absent() -> None:
    assert metric_sum(METRICS, "ido_relay_lag_events") == 45.0
    assert metric_sum(METRICS, "ido_projector_lag_messages") == 50.0
    assert metric_sum(METRICS, "ido_dead_letter_messages") is None


def test_a_lag_in_seconds_is_the_lag_in_events_over_the_rate_events_arrive_at() -> None:
    payments = 'ido_relay_lag_events{service="payments",topic="g"} 1.0\n'
    sample = lag_sample(10.0, {"payments": payments, "bridge": None, "ledger": METRICS},
                        {"payments": 5.0, "bridge": 5.0, "ledger": 90.0})
    assert sample.lags_s == {"relay payments": 0.2, "relay bridge": None, "relay ledger": 0.5, "projector": 0.5}
    assert not sample.under(), "a lag that could not be read is not under the limit"
    assert LagSample(1.0, {"relay ledger": 0.99, "projector": 0.0}).under()
    assert not LagSample(1.0, {"relay ledger": 1.0, "projector": 0.0}).under()


def test_the_lag_is_back_at_the_first_sample_after_the_fault_with_every_lag_under_a_second() -> None:
    samples = [LagSample(at, {"projector": lag}) for at, lag in
               [(9.0, 0.1), (10.0, 5.0), (11.0, 3.0), (12.5, 0.4), (13.0, 2.0), (14.0, 0.1)]]
    assert recovery_s(samples, 10.0) == 2.5
    assert recovery_s(samples, 14.5) is None


def test_a_process_is_read_from_proc_with_its_open_files_threads_and_group() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             start_new_session=True)
    try:
        assert group_pids(child.pid) == [child.pid]
        assert usage_of(child.pid) is not None
        before = usage_of(os.getpid())
        assert before is not None and before.rss_bytes > 10 * MIB
        release = threading.Event()
        thread = threading.Thread(target=release.wait, args=(30,))
        files = [Path(os.devnull).open() for _ in range(10)]
        thread.start()
        try:
            after = usage_of(os.getpid())
            assert after is not None
            assert (after.fds - before.fds, after.threads - before.threads) == (10, 1)
        finally:
            release.set()
            thread.join(timeout=30)
            for file in files:
                file.close()
    finally:
        child.kill()
        child.wait(timeout=30)
    assert usage_of(child.pid) is None


def test_the_mix_writes_to_all_three_services_and_pays_each_grant_and_library_a_unique_amount(tmp_path: Path) -> None:
    mix = ThreeServices(StackEnv(tmp_path, None, None), {"payments": 1, "bridge": 2, "ledger": 3})
    writes = [mix.write(n, tag) for tag in AMOUNT_BASE_CENTS for n in range(2400)]
    assert Counter(w.port for w in writes) == {1: 360, 2: 360, 3: 6480}
    assert len({w.key for w in writes}) == len(writes)
    paid = Counter((w.path, w.body["amount_cents"]) for w in writes if w.port in (1, 2))
    assert set(paid.values()) == {1}
    assert {w.path for w in writes if w.port == 1} == {f"/v1/years/2024/grants/{c}/advances" for c in MUNICIPALITIES}
    assert {w.path for w in writes if w.port == 2} == {f"/bridge/libraries/{lib}/payments" for lib in LIBRARIES}
    assert mix.write(20, "paced").body["amount_cents"] == 2_001
    assert mix.write(20 * 6, "paced").body["amount_cents"] == 2_002
    again, first = mix.write(5, "paced"), writes[-2400 + 5]
    assert (again.path, again.body, again.key) == (first.path, first.body, first.key)


def test_one_services_writes_are_the_mixs_writes_to_that_service(tmp_path: Path) -> None:
    mix = ThreeServices(StackEnv(tmp_path, None, None), {"payments": 1, "bridge": 2, "ledger": 3})
    for service, port in (("payments", 1), ("bridge", 2), ("ledger", 3)):
        writes = [OneService(mix, service).write(n, "fill") for n in range(1000)]
        assert {w.port for w in writes} == {port}
        assert len({w.key for w in writes}) == 1000
        paid = Counter((w.path, w.body.get("amount_cents")) for w in writes)
        assert service == "ledger" or set(paid.values()) == {1}


def test_the_figures_say_the_seed_how_to_run_it_again_and_every_problem() -> None:
    figures = SoakFigures(seed=1234, minutes=10, started_at="2026-12-01T22:00:00+00:00",
                          finished_at="2026-12-01T22:14:00+00:00", problems=["check minute 3: 2 lost"])
    text = render(asdict(figures))
    assert text.splitlines()[0] == (
        "Last soak: 2026-12-01T22:00:00+00:00 to 2026-12-01T22:14:00+00:00 (UTC), **FAILED**; seed `1234` "
        "(`make soak SOAK_SEED=1234 SOAK_MINUTES=10` draws the same faults), 10 minutes of load.")
    assert text.splitlines()[-1] == "- check minute 3: 2 lost"
