"""`make soak` (issue 19, Must show 4): the three services under writes paced at a share of the capacity measured
at the start, on a three-broker cluster of the soak's own, with faults drawn at random (seeded) from the cluster
faults of Must show 2, for ``SOAK_MINUTES`` (default 10) minutes; the seed is printed first.

    make soak [SOAK_MINUTES=30] [SOAK_SEED=1234]
    .venv/bin/python -m tests.resilience.soak --minutes 30 --seed 1234

What runs: a PostgreSQL server and a three-broker cluster of its own (free ports, state in ``var/soak/run/``),
payments, bridge and ledger (``ido serve``), their three relays and the projector. The capacity is a closed-loop
burst of the mix of ``soak_mix.py`` (advances, bridge payments, postings); the writes are then paced at ``SHARE``
of it. Until the minutes are up, a fault drawn from ``FAULTS`` follows a pause drawn from ``GAP_S`` (the first
after ``WARM_UP_S`` of steady load); after each, every relay's and the projector's lag must be under 1 s within
``LAG_RECOVERY_S`` of the cluster being whole again (three copies in sync). The warm-up lasts until the first
minute check after the first fault: each process's memory then, and the most open files and threads seen until
then, are what the later checks judge against (``soak_watch.py``): the processes have met the load and a fault.

Checked at every minute and at the end: every write answered 201 by then applied once by the view (0 lost, 0
doubled) and the three brokers under 3 GiB of RSS together; after the warm-up also the RSS of every process
within 1.25 x its value after warm-up and no process with more open files or threads than during warm-up. At
the end also, as the fault tests check it (``stack.verify``): every 201 stored once, every stored event on its
topic and applied once, the view equal to a replay from offset 0; no client gave up, no 5xx but 503 with
Retry-After, no relay or projector exit, at least half the capacity held. The figures go to
``tests/resilience/SOAK.md``; the exit status is 0 only if every check passed.

Bounded: every wait has a deadline, every loop a count; the whole run is stopped after ``minutes + OVERALL_SLACK_S``
(an alarm). Every process it starts is stopped when it ends, whatever happens (SIGINT, SIGTERM, a failed check).
Everything listens on and talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import shutil
import signal
import sys
import threading
import time
import types
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from tests.resilience.capacity import Accepted201, PacedPostings, measure_capacity
from tests.resilience.cluster_fault_kinds import FAULTS, REFUSES_WRITES
from tests.resilience.cluster_faults import SHARE, FaultRun
from tests.resilience.figures import Figures
from tests.resilience.load import Supervisor
from tests.resilience.soak_mix import ADVANCE_TURN, BRIDGE_TURN, LIBRARIES, SHARES, TURNS, OneService, ThreeServices
from tests.resilience.soak_report import MIB, Check, Fault, SoakFigures, write_markdown
from tests.resilience.soak_watch import (
    Baseline,
    Monitor,
    baseline_of,
    processes_usage,
    recovery_s,
    resource_problems,
    steady,
)
from tests.resilience.stack import (
    applied_ids,
    journal_event_counts,
    prepare_bridge,
    prepare_payments,
    verify,
    wait_until_projected,
)
from tests.resilience.support import REPO, Client, OwnPostgres, Processes, StackEnv, assert_no_secrets, wait_for
from tests.support.kafka_cluster import NODES, OwnCluster

RUN_DIR = REPO / "var" / "soak" / "run"
SERVICES = ("payments", "bridge", "ledger")
FILL_CLIENTS = 16
FILL_S = 5.0
"""Before the paced load, each service gets a closed-loop burst of its own writes by more clients than it has
threads (``ido serve --threads 8``): its thread pool, and the connections each thread holds, start before the
warm-up measures them, as they would on a busy day."""
WARM_UP_S = 60
"""Steady load before the first fault."""
GAP_S = (15.0, 45.0)
"""The pause before each fault, drawn from this range: the load runs steady between faults."""
LAST_FAULT_LEAD_S = 30
"""No fault starts in the last seconds of the load: it would run past the end with nothing after it."""
LAG_RECOVERY_S = 30
LAG_WAIT_S = 120
"""How long a lag that is not back within ``LAG_RECOVERY_S`` is still watched, to say how long it took."""
APPLIED_WAIT_S = 120
"""A check waits this long for the writes accepted by then to be applied (a fault may hold them back)."""
END_APPLIED_WAIT_S = 300
CLUSTER_RSS_LIMIT_BYTES = 3 * 2**30
MAX_FAULTS = 1000
OVERRUN_S = 600
"""The load may run this long past the minutes: the last fault started before the end finishes first."""
OVERALL_SLACK_S = 1800
"""Start, capacity burst, the last fault, the end checks and the stop take at most this long beyond the minutes."""


class Soak:
    """One soak run's state: its processes, its load, its measurements and its figures."""

    def __init__(self, seed: int, minutes: float, run_dir: Path):
        self.rng = random.Random(seed)
        self.minutes = minutes
        self.run_dir = run_dir
        self.figures = SoakFigures(seed, minutes, datetime.now(UTC).isoformat(timespec="seconds"))
        self.baseline: Baseline | None = None
        self.warm_up_over = threading.Event()
        """Set after the first fault: the next check takes the baseline."""
        self.warmed_up_s = 0.0
        self.lock = threading.Lock()
        """The minute checks run in a thread of their own, beside the faults."""

    def problem(self, text: str) -> None:
        with self.lock:
            self.figures.problems.append(text)

    # -- the checks -------------------------------------------------------------------------------

    def check(self, label: str, t0: float, monitor: Monitor, accepted: Accepted201, view: Engine,
              cluster: OwnCluster, wait_s: float) -> Check:
        """0 lost and 0 doubled so far; every process's memory, open files and threads; the brokers' memory."""
        usage = monitor.measure_now()
        problems: list[str] = []
        if self.baseline is None and self.warm_up_over.is_set():
            self.baseline = baseline_of(steady(monitor.usage_since(t0)))
            self.warmed_up_s = time.monotonic()
            label += " (warm-up's end)"
        elif self.baseline is not None:
            problems += resource_problems(self.baseline, usage)
        cluster_rss = cluster.rss_bytes()
        if cluster_rss > CLUSTER_RSS_LIMIT_BYTES:
            problems.append(f"the three brokers hold {cluster_rss // MIB} MiB, more than 3 GiB")
        with accepted.lock:
            ids = set(accepted.event_ids.values())
        started = time.monotonic()
        wait_until_projected(view, ids, wait_s)
        waited = time.monotonic() - started
        applied = applied_ids(view)
        lines = journal_event_counts(view)
        lost = sum(1 for i in ids if applied[i] == 0)
        doubled = sum(1 for n in applied.values() if n > 1) + sum(1 for n in lines.values() if n > 1)
        if lost:
            problems.append(f"{lost} of {len(ids)} writes answered 201 not applied by the view after {wait_s} s")
        if doubled:
            problems.append(f"{doubled} events applied twice or with two journal lines")
        base = self.baseline.rss_bytes if self.baseline is not None else {}
        ratios = {name: u.rss_bytes / base[name] for name, u in usage.items() if base.get(name)}
        worst = max(ratios, key=lambda name: ratios[name], default="-")
        result = Check(label, round(time.monotonic() - t0, 1), len(ids), lost, doubled, round(waited, 1),
                       round(ratios.get(worst, 0.0), 2), worst, sum(u.fds for u in usage.values()),
                       sum(u.threads for u in usage.values()), cluster_rss // MIB, problems)
        with self.lock:
            self.figures.checks.append(result)
        for problem in problems:
            self.problem(f"check {label}: {problem}")
        print(f"soak: check {label} at {result.at_s} s: {len(ids)} accepted, {lost} lost, {doubled} doubled, "
              f"RSS ratio {result.rss_ratio_max} ({worst}), brokers {result.cluster_rss_mib} MiB"
              + (f"; PROBLEMS: {problems}" if problems else ""), flush=True)
        return result

    # -- the faults -------------------------------------------------------------------------------

    def inject(self, kind: str, run: FaultRun, t0: float, monitor: Monitor) -> bool:
        """One fault and its lag check; False when the fault's own checks failed (no more faults then)."""
        first = len(run.windows)
        started = time.monotonic()
        print(f"soak: fault '{kind}' at {round(started - t0, 1)} s", flush=True)
        try:
            FAULTS[kind](run)
        except AssertionError as error:
            self.figures.faults.append(Fault(kind, kind, round(started - t0, 1), -1, None, [str(error)[:500]]))
            self.problem(f"fault '{kind}' at {round(started - t0, 1)} s: {str(error)[:500]}")
            return False
        for label, start, in_sync in run.windows[first:]:
            try:
                back = wait_for(lambda at=in_sync: recovery_s(monitor.lag_samples(), at) is not None,
                                max(1.0, in_sync + LAG_WAIT_S - time.monotonic()), f"the lags after '{label}'")
            except AssertionError:
                back = False
            recovered = recovery_s(monitor.lag_samples(), in_sync) if back else None
            problems = []
            if recovered is None:
                problems.append(f"a lag was not back under 1 s within {LAG_WAIT_S} s of three copies in sync")
            elif recovered > LAG_RECOVERY_S:
                problems.append(f"the lags were back under 1 s only {recovered:.1f} s after three copies in sync, "
                                f"more than {LAG_RECOVERY_S} s")
            fault = Fault(kind, label, round(start - t0, 1), round(in_sync - t0, 1),
                          None if recovered is None else round(recovered, 1), problems)
            self.figures.faults.append(fault)
            for problem in problems:
                self.problem(f"fault '{label}' at {fault.started_s} s: {problem}")
            print(f"soak: fault '{label}': in sync at {fault.in_sync_s} s, lags back after "
                  f"{fault.lag_recovered_s} s", flush=True)
        return True

    # -- the run ----------------------------------------------------------------------------------

    def run(self, resources: ExitStack) -> None:
        postgres = OwnPostgres(self.run_dir / "postgres")
        resources.callback(postgres.stop)
        database = postgres.start()
        cluster = resources.enter_context(OwnCluster(self.run_dir / "kafka-cluster"))
        procs = Processes(self.run_dir / "logs")
        resources.callback(procs.close)
        (self.run_dir / "stack").mkdir()
        stack = StackEnv(self.run_dir / "stack", cluster.info, database)
        stack.settings()
        env = stack.env()
        services = {name: procs.service(name, env) for name in SERVICES}
        relays = [procs.relay(name, env) for name in SERVICES]
        projector = procs.projector(env)
        ports = {name: proc.port or 0 for name, proc in services.items()}
        prepare_payments(Client(ports["payments"], stack.headers("ministry")))
        prepare_bridge(Client(ports["bridge"], stack.headers("kb")), LIBRARIES)
        settings = load_settings(env)
        written = settings.topic(EXPENDITURES.name)
        topics = [settings.topic(spec.name) for spec in (GRANTS, BRIDGE, EXPENDITURES)]
        view = create_sql_engine(settings.view_db_url)
        resources.callback(view.dispose)
        accepted = Accepted201()
        writes = ThreeServices(stack, ports)

        capacity = measure_capacity(writes, accepted)
        assert capacity.postings > 50, f"the capacity burst got too few writes through: {capacity}"
        for name in SERVICES:  # each service's threads all started before the warm-up measures them
            filled = measure_capacity(OneService(writes, name), accepted, clients=FILL_CLIENTS, burst_s=FILL_S,
                                      max_postings=5_000)
            self.figures.fill_per_s[name] = round(filled.per_s, 1)
        assert wait_until_projected(view, set(accepted.event_ids.values()), 180), "the path to the view never came up"
        target = capacity.per_s * SHARE
        self.figures.capacity_per_s, self.figures.target_per_s = round(capacity.per_s, 1), round(target, 1)
        print(f"soak: capacity {capacity.per_s:.1f} writes/s, paced at {target:.1f}/s", flush=True)
        load_s = self.minutes * 60
        paced = PacedPostings(writes, accepted, rate_per_s=target, max_postings=int(target * (load_s + OVERRUN_S)),
                              max_seconds=load_s + OVERRUN_S)
        run = FaultRun(cluster, topics, written, paced, lambda: set(applied_ids(view)), Figures())
        brokers: dict[str, Callable[[], int]] = {f"kafka node {n}": (lambda n=n: cluster.pid(n)) for n in NODES}
        monitor = Monitor(ports, {name: target * SHARES[name] for name in SERVICES},
                          lambda: processes_usage(procs.procs, brokers), cluster.rss_bytes,
                          load_s + OVERRUN_S + OVERALL_SLACK_S)
        with Supervisor(procs, [*relays, projector]) as supervisor, monitor:
            paced.start()
            t0 = paced.started
            try:
                self._paced_run(t0, load_s, paced, run, monitor, accepted, view, cluster)
            finally:
                paced.finish()
            self._end(t0, paced, monitor, accepted, view, cluster, env, capacity.per_s)
            self._keep_process_figures(monitor)
            if supervisor.restarts:
                self.figures.problems.append(f"a relay or the projector exited: {supervisor.restarts}")
        self.figures.problems += [f"client gave up: {line}" for line in accepted.gave_up[:10]]
        self.figures.problems += [f"a 5xx that is not 503 with Retry-After: {line}"
                                  for line in paced.stats.bad_5xx[:10]]
        try:
            assert_no_secrets(procs.logs(), stack.secrets())
        except AssertionError as error:
            self.figures.problems.append(f"a secret in a log: {error}")

    def _paced_run(self, t0: float, load_s: float, paced: PacedPostings, run: FaultRun, monitor: Monitor,
                   accepted: Accepted201, view: Engine, cluster: OwnCluster) -> None:
        """Warm-up, then faults after pauses until the minutes are up, while a thread checks at every minute."""
        stop_checks = threading.Event()

        def every_minute() -> None:
            for minute in range(1, int(self.minutes + OVERRUN_S / 60) + 2):
                if stop_checks.wait(max(0.0, t0 + 60 * minute - time.monotonic())):
                    return
                try:
                    self.check(f"minute {minute}", t0, monitor, accepted, view, cluster, APPLIED_WAIT_S)
                except Exception as error:  # noqa: BLE001 - a check that could not be made is a failed check
                    self.problem(f"check minute {minute} could not be made: {type(error).__name__}: {error}")

        checker = threading.Thread(target=every_minute, daemon=True)
        checker.start()
        try:
            paced.stop.wait(WARM_UP_S)  # the load runs steady first
            end = t0 + load_s
            for number in range(MAX_FAULTS):
                gap = self.rng.uniform(*GAP_S)
                kind = self.rng.choice(sorted(FAULTS))
                if number > 0 and time.monotonic() + gap > end - LAST_FAULT_LEAD_S:
                    break
                paced.stop.wait(gap)  # the load runs steady between faults
                try:
                    injected = self.inject(kind, run, t0, monitor)
                finally:
                    if number == 0:
                        self.warm_up_over.set()
                if number == 0:
                    wait_for(lambda: self.baseline is not None, 60 + APPLIED_WAIT_S + 30, "the warm-up's end")
                if not injected:
                    break
            paced.stop.wait(max(0.0, end - time.monotonic()))
        finally:
            stop_checks.set()
            checker.join(timeout=APPLIED_WAIT_S + 60)

    def _end(self, t0: float, paced: PacedPostings, monitor: Monitor, accepted: Accepted201, view: Engine,
             cluster: OwnCluster, env: dict[str, str], capacity_per_s: float) -> None:
        self.check("end", t0, monitor, accepted, view, cluster, END_APPLIED_WAIT_S)
        verdict = verify(env, view, set(accepted.event_ids.values()), self.run_dir / "replay", services=SERVICES)
        self.figures.end = {"expected": verdict.expected, "lost": verdict.lost_events, "doubled": len(verdict.doubled),
                            "view_equals_replay": verdict.view_equals_replay}
        self.figures.problems += [f"end: {problem}" for problem in verdict.problems()]
        posted = paced.answered()
        run_s = max((p.answered_s for p in posted), default=t0 + 1) - t0
        by_service = {name: 0 for name in SERVICES}
        for key in list(accepted.event_ids):
            n = int(key.rsplit("-", 1)[1])
            if key.startswith("paced-"):
                by_service[_service_of(n)] += 1
        self.figures.achieved_per_s = {name: round(count / run_s, 1) for name, count in by_service.items()}
        achieved = sum(by_service.values()) / run_s
        self.figures.achieved_per_s["all"] = round(achieved, 1)
        refusing = sorted({fault.kind for fault in self.figures.faults} & REFUSES_WRITES)
        if refusing:
            self.figures.end["load_held_not_judged"] = f"writes refused by design during {', '.join(refusing)}"
        elif achieved < 0.5 * capacity_per_s:
            self.figures.problems.append(f"the load held {achieved:.1f} writes/s, less than half the capacity "
                                         f"{capacity_per_s:.1f}/s")
        self.figures.requests = paced.stats.requests
        self.figures.by_status = {str(k): v for k, v in sorted(paced.stats.by_status.items())}
        self.figures.cluster_rss_max_mib = monitor.cluster_rss_max_bytes // MIB
        self.figures.end["samples_failed"] = len(monitor.errors)
        self.figures.end["first_failed_samples"] = monitor.errors[:3]

    def _keep_process_figures(self, monitor: Monitor) -> None:
        if self.baseline is None:
            return
        self.figures.baseline = {name: {"rss_mib": self.baseline.rss_bytes[name] // MIB,
                                        "fds_least": self.baseline.fds[name][0], "fds": self.baseline.fds[name][1],
                                        "threads_least": self.baseline.threads[name][0],
                                        "threads": self.baseline.threads[name][1]}
                                 for name in self.baseline.rss_bytes}
        after = [usage for _, usage in monitor.usage_since(self.warmed_up_s)]
        names = set().union(*after) if after else set()
        self.figures.peak = {name: {"rss_mib": max(s[name].rss_bytes for s in after if name in s) // MIB,
                                    "fds": max(s[name].fds for s in after if name in s),
                                    "threads": max(s[name].threads for s in after if name in s)}
                             for name in names}


def _service_of(n: int) -> str:
    turn = n % TURNS
    return "payments" if turn == ADVANCE_TURN else "bridge" if turn == BRIDGE_TURN else "ledger"


def _stop_on_signal(signum: int, _frame: types.FrameType | None) -> None:
    raise SystemExit(f"soak: stopped by {signal.Signals(signum).name}")


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make soak", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES") or 10),
                        help="minutes of paced load (SOAK_MINUTES, default 10); more for a longer soak")
    seed = os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(2**31)
    parser.add_argument("--seed", type=int, default=int(seed),
                        help="the seed of the faults and pauses drawn (SOAK_SEED, default random)")
    chosen = parser.parse_args(argv)
    if chosen.minutes < 2:
        parser.error("--minutes must be at least 2: one of warm-up, then faults")
    return chosen


def main(argv: list[str]) -> int:
    chosen = options(argv)
    print(f"soak: seed {chosen.seed}, {chosen.minutes:g} minutes (again: make soak SOAK_SEED={chosen.seed} "
          f"SOAK_MINUTES={chosen.minutes:g})", flush=True)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(signum, _stop_on_signal)
    RUN_DIR.parent.mkdir(parents=True, exist_ok=True)
    with (RUN_DIR.parent / "soak.lock").open("w") as lock:
        try:  # one soak per checkout: a second would wipe the first's state dir under it
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"soak: another soak runs in this checkout ({RUN_DIR}); not started", flush=True)
            return 2
        return _soak(chosen)


def _soak(chosen: argparse.Namespace) -> int:
    signal.alarm(int(chosen.minutes * 60 + OVERRUN_S + OVERALL_SLACK_S))
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    soak = Soak(chosen.seed, chosen.minutes, RUN_DIR)
    try:
        with ExitStack() as resources:
            soak.run(resources)
    except BaseException as error:  # noqa: BLE001 - recorded in the figures, then raised again
        soak.figures.problems.append(f"the soak stopped: {type(error).__name__}: {str(error)[:1000]}")
        raise
    finally:
        signal.alarm(0)
        soak.figures.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        path = soak.figures.write()
        write_markdown(path)
        print(f"soak: figures in {path} and tests/resilience/SOAK.md", flush=True)
    for problem in soak.figures.problems:
        print(f"soak: FAILED: {problem}", flush=True)
    print(f"soak: {'passed' if soak.figures.passed else 'FAILED'} (seed {chosen.seed})", flush=True)
    return 0 if soak.figures.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
