"""Load generators, only ever aimed at 127.0.0.1, bounded in time and count.

* ``closed_loop``: N clients, each sending its next request when the previous one answered
  (row 1). wrk (Debian's package, C, cheap per request) when it is installed, else Python threads
  with keep-alive ``http.client`` connections (costlier: they take CPU from the server).
* ``open_loop_read_your_writes``: a fixed rate of POST expenditure, each followed by the GET of the
  balance that includes it (row 5); latency counted from the moment the POST was due.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.data import expenditure_body

HERE = Path(__file__).resolve().parent
MAX_REQUESTS = 5_000_000  # a hard bound on any one load run, whatever the duration


@dataclass
class LoadResult:
    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[index]


def write_tokens_file(path: Path, tokens: dict[str, str]) -> None:
    path.write_text("".join(f"{code} {token}\n" for code, token in tokens.items()), encoding="utf-8")


def closed_loop(
    port: int, tokens_file: Path, clients: int, seconds: float, *, tool: str = "auto", run_id: str | None = None
) -> LoadResult:
    """POST expenditure (unique Idempotency-Key each) at 127.0.0.1:port for ``seconds``."""
    run_id = run_id or uuid.uuid4().hex[:10]
    if tool == "auto":  # wrk counts whole seconds only
        tool = "wrk" if shutil.which("wrk") and seconds >= 1 else "python"
    if tool == "wrk":
        return _wrk(port, tokens_file, clients, seconds, run_id)
    return _python_closed_loop(port, tokens_file, clients, seconds, run_id)


def _wrk(port: int, tokens_file: Path, clients: int, seconds: float, run_id: str) -> LoadResult:
    threads = max(1, min(2, clients))
    env = {**os.environ, "BENCH_TOKENS": str(tokens_file), "BENCH_RUN": run_id}
    completed = subprocess.run(
        [
            "wrk", f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(HERE / "post.lua"), f"http://127.0.0.1:{port}",
        ],
        env=env, capture_output=True, text=True, timeout=seconds + 60, check=True,
    )
    line = [x for x in completed.stdout.splitlines() if x.startswith("{")][-1]
    found = json.loads(line)
    elapsed = found["duration_us"] / 1e6
    errors = found["status_errors"] + found["connect_errors"] + found["read_errors"] + found["timeouts"]
    return LoadResult(
        tool="wrk",
        requests=found["requests"],
        seconds=elapsed,
        rps=found["requests"] / elapsed if elapsed else 0.0,
        p50_ms=found["p50_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
        errors=errors,
    )


def _read_tokens(tokens_file: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in tokens_file.read_text(encoding="utf-8").splitlines():
        code, token = line.split()
        pairs.append((code, token))
    return pairs


def _post_request(code: str, token: str, key: str, index: int) -> tuple[str, bytes, dict[str, str]]:
    body = json.dumps(expenditure_body(index, "promotion") | {"reference": key[:100]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "Idempotency-Key": key}
    return f"/v1/municipalities/{code}/expenditures", body, headers


def _python_closed_loop(port: int, tokens_file: Path, clients: int, seconds: float, run_id: str) -> LoadResult:
    tokens = _read_tokens(tokens_file)
    deadline = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def client(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i = 0
        while time.monotonic() < deadline and i < MAX_REQUESTS // clients:
            code, token = tokens[(n + i) % len(tokens)]
            path, body, headers = _post_request(code, token, f"{run_id}-{n}-{i}", i)
            started = time.monotonic()
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != 201:
                    errors[n] += 1
            except (OSError, http.client.HTTPException):
                errors[n] += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            latencies[n].append(time.monotonic() - started)
            i += 1
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    elapsed = time.monotonic() - started
    merged = sorted(x for per in latencies for x in per)
    return LoadResult(
        tool="python",
        requests=len(merged),
        seconds=elapsed,
        rps=len(merged) / elapsed,
        p50_ms=percentile(merged, 50) * 1000,
        p99_ms=percentile(merged, 99) * 1000,
        errors=sum(errors),
    )


@dataclass
class EndToEndResult:
    rate: float
    requests: int
    completed: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    achieved_rate: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_loop_read_your_writes(
    port: int, tokens_file: Path, rate: float, seconds: float, *, concurrency: int = 64, year: int = 2024
) -> EndToEndResult:
    """At ``rate``/s: POST an expenditure, then GET the balance with ``includes_event_id`` of it."""
    tokens = _read_tokens(tokens_file)
    total = min(MAX_REQUESTS, max(1, int(rate * seconds)))
    run_id = uuid.uuid4().hex[:10]
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    results: list[tuple[float, bool]] = []
    lock = threading.Lock()

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def exchange(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
            """One request; sent again once on a new connection when the server had closed this one (at low
            rates a thread's keep-alive connection idles past gunicorn's 2 s and the next request on it failed:
            1-5 of 500 counted as errors at 50/s). A posting carries its Idempotency-Key: sent twice, it is
            recorded once and answered the same."""
            nonlocal connection

            def send() -> tuple[int, bytes]:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()

            try:
                return send()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                return send()

        while (job := jobs.get()) is not None:
            index, due = job
            code, token = tokens[index % len(tokens)]
            ok = False
            try:
                path, body, headers = _post_request(code, token, f"{run_id}-{index}", index)
                status, answer_bytes = exchange("POST", path, body, headers)
                answer = json.loads(answer_bytes or b"{}")
                if status == 201:
                    status, _ = exchange(
                        "GET",
                        f"/v1/municipalities/{code}/balances/{year}?includes_event_id={answer['event_id']}",
                        None,
                        {"Authorization": f"Bearer {token}"},
                    )
                    ok = status == 200
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            done = time.monotonic()
            with lock:
                results.append((done - due, ok))
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    for index in range(total):
        due = started + index / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        jobs.put((index, due))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed = time.monotonic() - started
    good = sorted(latency for latency, ok in results if ok)
    return EndToEndResult(
        rate=rate,
        requests=total,
        completed=len(good),
        errors=total - len(good),
        p50_ms=percentile(good, 50) * 1000,
        p99_ms=percentile(good, 99) * 1000,
        max_ms=(good[-1] * 1000) if good else float("nan"),
        achieved_rate=len(results) / elapsed if elapsed else 0.0,
    )
