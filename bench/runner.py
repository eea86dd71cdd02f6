"""`python -m bench`: every row, on every store, one table on stdout and bench/results.json.

The Kafka broker and the PostgreSQL server are given in the environment (`make bench` starts its
own): BENCH_KAFKA_BOOTSTRAP, BENCH_POSTGRES_HOST/PORT/USER/PASSWORD.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import provenance_off, rows
from bench.replay import REPLAY_IMPLEMENTATION
from bench.stores import Bench, Postgres

REPO = Path(__file__).resolve().parents[1]
ROWS = ("1", "2", "3", "4", "5", "6", "7")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(float(x)) for x in text.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    d = rows.Sizes()
    p = argparse.ArgumentParser(prog="python -m bench", description="Hot paths beside their references.")
    p.add_argument("--stores", default="sqlite,postgres", help="comma list of sqlite, postgres")
    p.add_argument("--rows", default=",".join(ROWS), help="comma list of rows 1-7")
    p.add_argument("--clients", type=int, default=d.clients, help="row 1: concurrent clients")
    p.add_argument("--workers", type=int, default=d.workers, help="gunicorn workers (ido serve --workers)")
    p.add_argument("--threads", type=int, default=d.threads, help="gunicorn threads (ido serve --threads)")
    p.add_argument("--write-seconds", type=float, default=d.write_seconds)
    p.add_argument("--warmup-seconds", type=float, default=d.warmup_seconds)
    p.add_argument("--load-tool", choices=("auto", "wrk", "python"), default=d.load_tool)
    p.add_argument("--relay-events", type=int, default=d.relay_events)
    p.add_argument("--projection-events", type=int, default=d.projection_events)
    p.add_argument("--replay-events", type=int, default=d.replay_events, help="row 4 (issue size: 1000000)")
    p.add_argument("--e2e-rate", type=float, default=d.e2e_rate)
    p.add_argument("--e2e-seconds", type=float, default=d.e2e_seconds)
    p.add_argument("--e2e-threads", type=int, default=d.e2e_threads, help="row 5: ido serve --threads")
    p.add_argument("--memory-sizes", type=_ints, default=d.memory_sizes, help="row 6 (issue: 100000,1000000)")
    p.add_argument("--scale-sizes", type=_ints, default=d.scale_sizes, help="row 7 (issue: 10000,100000,1000000)")
    p.add_argument("--scale-batch", type=int, default=d.scale_batch)
    p.add_argument("--scale-seconds", type=float, default=d.scale_seconds)
    p.add_argument("--municipalities", type=int, default=d.municipalities)
    p.add_argument("--tiny", action="store_true", help="the smoke test's sizes: every row, seconds not minutes")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    p.add_argument("--work-dir", type=Path, default=REPO / "var" / "bench" / "work")
    p.add_argument("--keep-work", action="store_true", help="keep the stores and logs (kept anyway when a row fails)")
    return p


TINY = {
    "clients": 4, "write_seconds": 0.5, "warmup_seconds": 0, "relay_events": 200, "projection_events": 300,
    "replay_events": 300, "e2e_rate": 20, "e2e_seconds": 1, "e2e_threads": 16, "memory_sizes": (300, 600),
    "scale_sizes": (200, 400), "scale_batch": 100, "scale_seconds": 0.5, "municipalities": 5,
}


def sizes_of(args: argparse.Namespace) -> rows.Sizes:
    sizes = rows.Sizes(
        clients=args.clients, workers=args.workers, threads=args.threads, write_seconds=args.write_seconds,
        warmup_seconds=args.warmup_seconds, load_tool=args.load_tool, relay_events=args.relay_events,
        projection_events=args.projection_events, replay_events=args.replay_events, e2e_rate=args.e2e_rate,
        e2e_seconds=args.e2e_seconds, e2e_threads=args.e2e_threads, memory_sizes=tuple(args.memory_sizes),
        scale_sizes=tuple(args.scale_sizes), scale_batch=args.scale_batch, scale_seconds=args.scale_seconds,
        municipalities=args.municipalities,
    )
    if args.tiny:
        for key, value in TINY.items():
            setattr(sizes, key, value)
    return sizes


def _git(*argv: str) -> str:
    try:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine() -> dict[str, Any]:
    mem_kib = 0
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1), "cpu": cpu,
        "python": platform.python_version(), "load_average_at_start": os.getloadavg(),
    }


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def table(found: list[rows.Row]) -> str:
    headers = ("row", "store", "project's path", "reference", "ratio", "target", "met")
    lines = [
        (r.row, r.store, r.project, r.reference, fmt_ratio(r.ratio), r.target, "yes" if r.met else "NO")
        for r in found
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(fmt(line) for line in lines)
    return "\n".join(out)


def _plan(
    bench: Bench,
    store: str,
    sizes: rows.Sizes,
    datasets: rows.Datasets,
    cache: dict[str, Any],
    progress: Callable[[str], None],
) -> list[tuple[str, Callable[[], rows.Row], Callable[[rows.Row], rows.Row] | None]]:
    # Rows 1-4 each run a second time with provenance off, right after (issue 13: it may cost ≤20 %).
    return [
        ("1", lambda: rows.row_write(bench, store, sizes),
         lambda on: provenance_off.row_write_off(bench, store, sizes, on)),
        ("2", lambda: rows.row_relay(bench, store, sizes),
         lambda on: provenance_off.row_relay_off(bench, store, sizes, on)),
        ("3", lambda: rows.row_projection(bench, store, sizes, datasets),
         lambda on: provenance_off.row_projection_off(bench, store, sizes, datasets, on)),
        ("4", lambda: rows.row_replay(bench, store, sizes, datasets, cache),
         lambda on: provenance_off.row_replay_off(bench, store, sizes, datasets, cache, on)),
        ("5", lambda: rows.row_end_to_end(bench, store, sizes), None),
        ("6", lambda: rows.row_memory(bench, store, sizes, datasets, cache), None),
        ("7", lambda: rows.row_scale(bench, store, sizes, progress), None),
    ]


def run(args: argparse.Namespace, progress: Callable[[str], None]) -> dict[str, Any]:
    sizes = sizes_of(args)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    wanted = {r.strip() for r in args.rows.split(",") if r.strip()}
    bootstrap = os.environ.get("BENCH_KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise SystemExit("bench: BENCH_KAFKA_BOOTSTRAP is not set (run `make bench`, which starts a broker)")
    postgres = Postgres.from_env()
    if "postgres" in stores and postgres is None:
        raise SystemExit("bench: BENCH_POSTGRES_PORT is not set (run `make bench`, which starts PostgreSQL)")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    credentials = os.environ.get("BENCH_KAFKA_CREDENTIALS_DIR")
    if not credentials:
        raise SystemExit("bench: BENCH_KAFKA_CREDENTIALS_DIR is not set (run `make bench`, which starts a broker)")
    bench = Bench(work_dir=args.work_dir / time.strftime("%Y%m%d-%H%M%S"), kafka_bootstrap=bootstrap,
                  kafka_credentials_dir=credentials, postgres=postgres)
    datasets = rows.Datasets(bench, sizes.municipalities)
    found: list[rows.Row] = []
    failures: list[dict[str, str]] = []
    cache: dict[str, Any] = {}
    started = time.monotonic()
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _git("rev-parse", "HEAD"),
        "pid": os.getpid(),  # rows 2 and 3 time their runs in other processes (bench/own_process.py)
        # the bench's own output files do not count: a second run in one checkout is still clean
        "work_tree_changed": bool(_git("status", "--porcelain", "--", ".", ":(exclude)bench/results*.json")),
        "machine": machine(),
        "postgres": postgres.server_settings() if postgres and "postgres" in stores else None,
        "kafka_heap_opts": os.environ.get("KAFKA_HEAP_OPTS"),
        "sqlite": "journal_mode=WAL, synchronous=FULL (views, keys); eventsourcing's SQLite defaults (events)",
        "replay_implementation": REPLAY_IMPLEMENTATION,
        "sizes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(sizes).items()},
        "tiny": args.tiny,
    }
    collector_default = gc.get_threshold()
    try:
        for store in stores:
            plan = _plan(bench, store, sizes, datasets, cache, progress)
            for number, measure, measure_off in plan:
                if number not in wanted:
                    continue
                progress(f"== row {number} on {store} ({time.monotonic() - started:.0f} s so far)")
                # A row that builds a streaming process's parts here (the replay; the relay and the projector run
                # in processes of their own, bench/own_process.py) also sets this process's collector
                # (services/common/collector.py): each measurement, and so each reference, starts with CPython's
                # own thresholds.
                gc.set_threshold(*collector_default)
                try:
                    row = measure()
                except Exception as error:  # noqa: BLE001 - a failed row is reported, the others still run
                    failures.append({"row": number, "store": store, "error": repr(error)})
                    progress(traceback.format_exc())
                    continue
                found.append(row)
                progress(f"   {row.row} {row.store}: {row.project} | {row.reference} | ratio {fmt_ratio(row.ratio)}")
                if measure_off is None:
                    continue
                gc.set_threshold(*collector_default)
                try:
                    off = measure_off(row)
                except Exception as error:  # noqa: BLE001 - reported like a failed row
                    failures.append({"row": f"{number} off", "store": store, "error": repr(error)})
                    progress(traceback.format_exc())
                    continue
                found.append(off)
                progress(f"   {off.row} {off.store}: {off.project} | on/off {fmt_ratio(off.ratio)}")
    finally:
        bench.cleanup()
        if not failures and not args.keep_work:
            shutil.rmtree(bench.work_dir, ignore_errors=True)
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["datasets"] = {str(n): {"prefix": p, "produce_s": round(s, 2)} for n, (p, s) in datasets.made.items()}
    return {"meta": meta, "rows": [r.as_dict() for r in found], "failures": failures, "table": table(found)}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run(args, progress)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    meta = result["meta"]
    m = meta["machine"]
    print()
    changed = " (+ work tree changes)" if meta["work_tree_changed"] else ""
    print(f"bench {meta['date']} commit {meta['commit'][:12]}{changed}; {m['nproc']} cores, {m['memory_gib']} GiB;"
          f" {meta['seconds']:.0f} s")
    if meta["postgres"]:
        pg = meta["postgres"]
        print(f"postgres {pg['server_version']}: fsync={pg['fsync']} synchronous_commit={pg['synchronous_commit']}")
    print(result["table"])
    print(f"results: {args.out}")
    if result["failures"]:
        for failure in result["failures"]:
            print(f"FAILED row {failure['row']} on {failure['store']}: {failure['error']}")
        sys.exit(1)
