"""What the soak watches (issue 19, Must show 4), and the judgements on it.

Processes: resident memory (``VmRSS`` of ``/proc/<pid>/status``), open file descriptors (``/proc/<pid>/fd/``)
and threads (``/proc/<pid>/task/``) of every process the soak started: each service's gunicorn master and
worker, the three relays, the projector (every process of each one's process group) and the three brokers.
A process is named by its role (``ledger``, ``ledger child 1``: its gunicorn worker, ``kafka node 2``), not
its pid: a broker restarted by a fault is the same node, judged against the node's own figures.

Lags: ``ido_relay_lag_events`` of each service (events stored but not yet on Kafka) and the sum of
``ido_projector_lag_messages`` of the ledger (messages on the topics not yet applied), from their
``/metrics``. There is no timestamp metric; a lag in seconds is the lag in events divided by the rate events
arrive at (the paced rate times the service's share of it; for the projector the whole paced rate): at that
rate the oldest event waiting has waited about that long.

Everything here reads ``/proc`` and asks 127.0.0.1; every loop is bounded in count and in time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.resilience.support import Client, Proc

LAG_LIMIT_S = 1.0
RSS_GROWTH = 1.25
SAMPLE_EVERY_S = 1.0
USAGE_EVERY = 5
"""Processes are measured every fifth lag sample (every 5 s): /proc is cheap, but the brokers' pids come from
scripts/kafka-cluster.sh."""


@dataclass(frozen=True)
class Usage:
    rss_bytes: int
    fds: int
    threads: int
    pid: int = 0


def usage_of(pid: int) -> Usage | None:
    """The process's memory, open files and threads; None when it is gone (or a zombie, without memory)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None
    rss = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return None if rss is None else Usage(int(rss) * 1024, fds, threads, pid)


def fd_kinds(pid: int) -> dict[str, int]:
    """What the process's open files are (socket, pipe, anon_inode, file): says what a growth is made of."""
    kinds: dict[str, int] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return kinds
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


def group_pids(pgid: int) -> list[int]:
    """The pids of a process group (a service's gunicorn master and its worker), the leader first."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ')'
        if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
            found.append(int(entry.name))
    return sorted(found, key=lambda pid: (pid != pgid, pid))


def processes_usage(procs: list[Proc], brokers: Mapping[str, Callable[[], int]]) -> dict[str, Usage]:
    """Every running process by its role; ``brokers``: role -> a call giving the node's pid (raises when down)."""
    found: dict[str, Usage] = {}
    for proc in procs:
        if proc.popen is None or not proc.alive():
            continue
        for index, pid in enumerate(group_pids(proc.popen.pid)):
            usage = usage_of(pid)
            if usage is not None:
                found[proc.name if index == 0 else f"{proc.name} child {index}"] = usage
    for role, pid_of in brokers.items():
        try:
            pid = pid_of()
        except AssertionError:
            continue  # the node is down (a fault): not measured now
        usage = usage_of(pid)
        if usage is not None:
            found[role] = usage
    return found


@dataclass(frozen=True)
class Baseline:
    """After warm-up: each process's memory at its end, and the fewest and the most open files and threads seen
    during it."""

    rss_bytes: dict[str, int]
    fds: dict[str, tuple[int, int]]
    threads: dict[str, tuple[int, int]]


STARTING_S = 30
"""A process is starting for this long after its pid first appears under its role (a broker restarted by a fault):
its figures then are no sample of the steady state."""


def steady(samples: list[tuple[float, dict[str, Usage]]]) -> list[dict[str, Usage]]:
    """The samples with every process left out during its first ``STARTING_S`` under a new pid; a pid of the first
    sample was started before the load and is steady from the start."""
    first_seen: dict[int, float] = {}
    if samples:
        first_seen = {usage.pid: -float("inf") for usage in samples[0][1].values()}
    kept = []
    for at, usage in samples:
        for item in usage.values():
            first_seen.setdefault(item.pid, at)
        kept.append({name: item for name, item in usage.items() if at - first_seen[item.pid] >= STARTING_S})
    return kept


def baseline_of(samples: list[dict[str, Usage]]) -> Baseline:
    samples = [sample for sample in samples if sample]
    assert samples, "no process was measured during the warm-up"
    names = set().union(*samples)
    last = {name: next(s[name] for s in reversed(samples) if name in s) for name in names}

    def swing(count: Callable[[Usage], int], name: str) -> tuple[int, int]:
        seen = [count(s[name]) for s in samples if name in s]
        return min(seen), max(seen)

    return Baseline(
        rss_bytes={name: usage.rss_bytes for name, usage in last.items()},
        fds={name: swing(lambda u: u.fds, name) for name in names},
        threads={name: swing(lambda u: u.threads, name) for name in names},
    )


def _grown(name: str, what: str, count: int, least_most: tuple[int, int]) -> list[str]:
    """A count is growth past the most seen during warm-up by more than it swung during warm-up: the process's own
    wobble (connections re-made after a fault, a pool's threads) is allowed once, a leak adds up past it."""
    least, most = least_most
    if count <= most + (most - least):
        return []
    return [f"{name}: {count} {what}, more than {most} + {most - least} ({least} to {most} during warm-up"]


def resource_problems(baseline: Baseline, now: Mapping[str, Usage]) -> list[str]:
    """Memory above ``RSS_GROWTH`` times its value after warm-up; open files or threads grown past the warm-up's
    (``_grown``); a process not measured during warm-up."""
    problems = []
    for name, usage in sorted(now.items()):
        if name not in baseline.rss_bytes:
            problems.append(f"{name}: running, but not during the warm-up")
            continue
        if usage.rss_bytes > RSS_GROWTH * baseline.rss_bytes[name]:
            problems.append(f"{name}: RSS {usage.rss_bytes // 2**20} MiB, more than {RSS_GROWTH} x its "
                            f"{baseline.rss_bytes[name] // 2**20} MiB after warm-up")
        problems += [f"{text}; now {fd_kinds(usage.pid)})"
                     for text in _grown(name, "open files", usage.fds, baseline.fds[name])]
        problems += [f"{text})" for text in _grown(name, "threads", usage.threads, baseline.threads[name])]
    return problems


def metric_sum(text: str, name: str) -> float | None:
    """The sum of a metric's samples in a Prometheus text (None: the metric is not there)."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith((name + "{", name + " "))]
    return sum(values) if values else None


@dataclass(frozen=True)
class LagSample:
    at_s: float
    """Monotonic seconds."""
    lags_s: dict[str, float | None]
    """``relay <service>`` and ``projector`` -> seconds behind (None: the metric could not be read)."""

    def under(self, limit_s: float = LAG_LIMIT_S) -> bool:
        return all(lag is not None and lag < limit_s for lag in self.lags_s.values())


def lag_sample(at_s: float, metrics: Mapping[str, str | None], rates_per_s: Mapping[str, float]) -> LagSample:
    """Seconds behind from the services' metrics texts (None when a scrape failed) and the paced rate of events
    into each service's store; the projector's from the ledger's text and the sum of the rates."""
    lags: dict[str, float | None] = {}
    for service, text in metrics.items():
        relay = metric_sum(text, "ido_relay_lag_events") if text is not None else None
        lags[f"relay {service}"] = None if relay is None else relay / rates_per_s[service]
    ledger = metrics.get("ledger")
    projector = metric_sum(ledger, "ido_projector_lag_messages") if ledger is not None else None
    lags["projector"] = None if projector is None else projector / sum(rates_per_s.values())
    return LagSample(at_s, lags)


def recovery_s(samples: list[LagSample], after_s: float, limit_s: float = LAG_LIMIT_S) -> float | None:
    """Seconds from ``after_s`` to the first sample at or after it with every lag under ``limit_s``."""
    return next((s.at_s - after_s for s in samples if s.at_s >= after_s and s.under(limit_s)), None)


class Monitor:
    """Samples the lags every ``SAMPLE_EVERY_S`` and the processes every ``USAGE_EVERY`` samples, in a thread,
    until ``stop`` or ``max_seconds``."""

    def __init__(self, ports: Mapping[str, int], rates_per_s: Mapping[str, float],
                 measure: Callable[[], dict[str, Usage]], cluster_rss: Callable[[], int], max_seconds: float):
        self.clients = {service: Client(port, timeout_s=5) for service, port in ports.items()}
        self.rates_per_s = dict(rates_per_s)
        self.measure = measure
        self.cluster_rss = cluster_rss
        self.deadline = time.monotonic() + max_seconds
        self.lags: list[LagSample] = []
        self.usage: list[tuple[float, dict[str, Usage]]] = []
        self.cluster_rss_max_bytes = 0
        self.errors: list[str] = []
        """Samples that failed (a process that ended while it was read): reported, not fatal."""
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _scrape(self, client: Client) -> str | None:
        answer = client.get("/metrics")
        return answer.body if answer.status == 200 and isinstance(answer.body, str) else None

    def measure_now(self) -> dict[str, Usage]:
        usage = self.measure()
        cluster = self.cluster_rss()
        with self.lock:
            self.usage.append((time.monotonic(), usage))
            self.cluster_rss_max_bytes = max(self.cluster_rss_max_bytes, cluster)
        return usage

    def _run(self) -> None:
        rounds = int((self.deadline - time.monotonic()) / SAMPLE_EVERY_S) + 1
        for round_ in range(rounds):
            if self.stop.wait(SAMPLE_EVERY_S) or time.monotonic() >= self.deadline:
                return
            try:
                texts = {service: self._scrape(client) for service, client in self.clients.items()}
                sample = lag_sample(time.monotonic(), texts, self.rates_per_s)
                with self.lock:
                    self.lags.append(sample)
                if round_ % USAGE_EVERY == 0:
                    self.measure_now()
            except Exception as error:  # noqa: BLE001 - a sample that failed is missing, the next is taken
                with self.lock:
                    self.errors.append(f"{type(error).__name__}: {error}")

    def lag_samples(self) -> list[LagSample]:
        with self.lock:
            return list(self.lags)

    def usage_since(self, since_s: float) -> list[tuple[float, dict[str, Usage]]]:
        """(monotonic seconds, every process's figures) of each sample since ``since_s``."""
        with self.lock:
            return [(at, usage) for at, usage in self.usage if at >= since_s]

    def __enter__(self) -> Monitor:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        for client in self.clients.values():
            client.close()
