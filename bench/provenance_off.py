"""Rows 1-4 again with provenance off, in the same run, right after their "on" row.

Issue 13 lets signing and verification cost each of these rows at most 20 %. "Off" means: the
ledger server stores events without the writer's record MAC (``IDO_PROVENANCE=off``, row 1), the
relay neither checks MACs nor seals (row 2), the projector and the replay check no seal (rows 3
and 4). Everything else (validation, hash chain, durability, contract checks) stays on. Each row
here shows the "off" figure and, as its ratio, the "on" row's throughput as a share of it (for the
replay: off time / on time), which must be at least 0.8.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench import procs
from bench.data import fill_ledger_store
from bench.replay import replay_to_balances
from bench.rows import (
    CpuTally,
    Datasets,
    Row,
    Sizes,
    _fmt_rate,
    measure_load,
    stored_event_count,
    time_projection,
    time_relay,
)
from bench.stores import Bench
from services.common.eventstore import build_application
from services.ledger.application.app import LedgerApplication

MAX_COST = 0.2
TARGET = "on ≥0.8× off (≤20 % cost)"


def _row(on: Row, project: str, ratio: float, figures: dict[str, Any], note: str) -> Row:
    return Row(
        f"{on.row} off", on.store, project, f"provenance on: {on.project}", ratio, TARGET,
        ratio >= 1 - MAX_COST, figures, note=f"provenance off; {note}",
    )


def row_write_off(bench: Bench, store: str, sizes: Sizes, on: Row) -> Row:
    """Two fresh servers, one with provenance and one without, measured in turn (on, off, on, off),
    so that neither gains from coming later: the machine's own drift was larger than the MAC's cost."""
    on_place, off_place = bench.place(store, "write-on"), bench.place(store, "write-off")
    started = [
        procs.start_ledger_server(
            place.with_env(IDO_PROVENANCE=flag), place.log_dir, workers=sizes.workers, threads=sizes.threads,
            name=f"ledger-{flag}", wait=False,
        )
        for place, flag in ((on_place, "on"), (off_place, "off"))
    ]
    window = max(1.0, sizes.write_seconds / 2)
    results: dict[str, list[Any]] = {"on": [], "off": []}
    try:
        for process, port in started:
            procs.wait_http(process, port)
        for _round in range(2):
            for (_process, port), flag in zip(started, ("on", "off"), strict=True):
                results[flag].append(measure_load(port, bench.tokens_file(), sizes, window))
    finally:
        for process, _port in started:
            process.stop()
    on_rps = sum(r.rps for r in results["on"]) / len(results["on"])
    off_rps = sum(r.rps for r in results["off"]) / len(results["off"])
    last_off = results["off"][-1]
    ratio = on_rps / off_rps if off_rps else 0.0
    return _row(
        on, f"{off_rps:,.0f} req/s (last window p99 {last_off.p99_ms:.1f} ms); on in turn: {on_rps:,.0f} req/s", ratio,
        {"on": [r.as_dict() for r in results["on"]], "off": [r.as_dict() for r in results["off"]]},
        f"no record MAC on the stored events (IDO_PROVENANCE=off); on and off servers measured in turn,"
        f" 2 windows of {window:.0f} s each",
    )


def row_relay_off(bench: Bench, store: str, sizes: Sizes, on: Row) -> Row:
    place = bench.place(store, "relay-off")
    app = build_application(LedgerApplication, place.settings.eventsourcing_env("ledger"))
    try:
        fill_ledger_store(app, sizes.relay_events, municipalities=sizes.municipalities)
        n = stored_event_count(app)  # the relay off publishes each of them
    finally:
        app.close()
    cpu = CpuTally()
    off_s = time_relay(place, n, sealed=False, cpu=cpu)
    on_rate = on.figures["events"] / on.figures["relay_s"]
    ratio = on_rate / (n / off_s)
    return _row(
        on, _fmt_rate(n / off_s, "events/s"), ratio,
        {"events": n, "relay_s": off_s, "on_events_per_s": on_rate,
         "cpu_us_per_event": cpu.per_event_us(n, "relay_sender", "relay_page_worker")},
        f"{n:,} stored events; the relay checks no MAC and seals nothing",
    )


def row_projection_off(bench: Bench, store: str, sizes: Sizes, datasets: Datasets, on: Row) -> Row:
    n = sizes.projection_events
    place = bench.place(store, "projection-off", topic_prefix=datasets.prefix(n))
    off_s, stats = time_projection(place, n, checked=False)
    on_rate = on.figures["events"] / on.figures["projection_s"]
    ratio = on_rate / (n / off_s)
    return _row(
        on, _fmt_rate(n / off_s, "events/s"), ratio,
        {"events": n, "projection_s": off_s, "on_events_per_s": on_rate, "stats": stats},
        f"{n:,} events, the same dataset; no seal check",
    )


def row_replay_off(
    bench: Bench, store: str, sizes: Sizes, datasets: Datasets, cache: dict[str, Any], on: Row
) -> Row:
    """Off, on, off again after the "on" row: the replay's time moved by a quarter between two runs in
    a row (page cache, the machine), more than the seal check costs, so both sides get the median of
    their runs taken in turn."""
    n = sizes.replay_events
    if "replay-off" not in cache:
        place = bench.place(store, "replay-off", topic_prefix=datasets.prefix(n))
        topics = datasets.topics(n)

        def timed(verify: bool) -> float:
            started = time.perf_counter()
            result = replay_to_balances(place.settings, topics, verify_provenance=verify)
            if result.events != n:
                raise RuntimeError(f"replay (seal check {verify}) read {result.events} of {n}")
            return time.perf_counter() - started

        off_runs = [timed(False)]
        on_runs = [float(on.figures["replay_s"]), timed(True)]
        off_runs.append(timed(False))
        cache["replay-off"] = (off_runs, on_runs, store)
    off_runs, on_runs, measured_on = cache["replay-off"]
    off_s, on_s = statistics.median(off_runs), statistics.median(on_runs)
    ratio = off_s / on_s
    note = f"{n:,} events; no seal check; runs in turn on, off, on, off: medians of 2"
    if measured_on != store:
        note += f"; reads Kafka only: measured once (in the {measured_on} pass)"
    return _row(
        on, f"{off_s:.2f} s (on in turn: {on_s:.2f} s)", ratio,
        {"events": n, "replay_s": off_s, "on_replay_s": on_s, "off_runs_s": off_runs, "on_runs_s": on_runs}, note,
    )
