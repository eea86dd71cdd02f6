"""Real processes and servers for the resilience suite: `ido serve|relay|project` as subprocesses,
a Kafka broker and a PostgreSQL server of a test's own (to stop and restart), and a bounded HTTP
client. Everything listens on and talks to 127.0.0.1 only; every wait and every request loop is
bounded in count and time.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from services.common.auth import init_token_files, issue_token
from services.common.config import Settings, load_settings
from services.common.definition import SERVICE_NAMES
from services.common.kafka_provisioning import provision
from tests.support.infra import KafkaInfo, PostgresInfo

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SECRET_MARKERS = ("Bearer ey", "eyJhbGciOi")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


# ------------------------------------------------------------------------------------------------
# HTTP: one keep-alive connection per client, to 127.0.0.1 only, with a timeout on every call
# ------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    """0: no answer at all (refused connection, reset, timeout)."""
    body: Any
    headers: dict[str, str]
    seconds: float
    error: str = ""

    @property
    def retry_after(self) -> str | None:
        return self.headers.get("retry-after")


class Client:
    def __init__(
        self, port: int, headers: dict[str, str] | None = None, timeout_s: float = 15.0, host: str = HOST
    ):
        assert host.startswith("127."), "the resilience suite talks to the loopback only"
        self.host = host
        self.port = port
        self.headers = headers or {}
        self.timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def _conn(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> Answer:
        all_headers = {**self.headers, **(headers or {})}
        data: bytes | None = raw
        if body is not None and raw is None:
            data = json.dumps(body).encode()
        if data is not None:
            all_headers.setdefault("Content-Type", content_type)
        started = time.monotonic()
        try:
            connection = self._conn()
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            payload = response.read()
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
            if answer_headers.get("connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return Answer(0, None, {}, time.monotonic() - started, error=f"{type(error).__name__}: {error}")
        try:
            parsed: Any = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode("utf-8", "replace")
        return Answer(response.status, parsed, answer_headers, time.monotonic() - started)

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.request("PUT", path, body, **kwargs)


# ------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int | None = None
    host: str = HOST
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    def start(self) -> Proc:
        assert self.popen is None or self.popen.poll() is not None, f"{self.name} is already running"
        log = self.log_path.open("ab")
        log.write(f"\n=== start {self.starts + 1}: {shlex.join(self.argv)}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a kill takes gunicorn's workers too
        )
        log.close()
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def _signal_group(self, signum: int) -> None:
        assert self.popen is not None
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to the whole process group (the service, its gunicorn workers): a crash."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        self.popen.wait(timeout=15)
        self.kills += 1
        _wait_group_gone(self.popen.pid, 10)

    def stop(self, grace_s: float = 10) -> None:
        if self.popen is None or self.popen.poll() is not None:
            if self.popen is not None:
                self._signal_group(signal.SIGKILL)  # orphans of an earlier crash, if any
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.popen.wait(timeout=10)
        self._signal_group(signal.SIGKILL)
        _wait_group_gone(self.popen.pid, 10)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


class Processes:
    """Every process a test starts; ``close()`` (a fixture finalizer) ends them all, always."""

    def __init__(self, logs_dir: Path):
        self.logs_dir = logs_dir
        logs_dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str], port: int | None = None) -> Proc:
        full_env = {
            **os.environ,
            **env,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
        }
        for name_ in list(full_env):
            if name_.startswith("TEST_"):
                del full_env[name_]
        proc = Proc(
            name=name,
            argv=[sys.executable, "-m", "services.common.cli", *args],
            env=full_env,
            log_path=self.logs_dir / f"{name}.log",
            port=port,
        )
        self.procs.append(proc)
        return proc.start()

    def service(
        self, service: str, env: dict[str, str], *, name: str | None = None, threads: int = 8, host: str = HOST
    ) -> Proc:
        port = free_port()
        proc = self.spawn(
            name or service, ["serve", service, "--port", str(port), "--threads", str(threads)], env, port=port
        )
        proc.host = host
        wait_healthy(proc)
        return proc

    def relay(self, service: str, env: dict[str, str], *, name: str | None = None) -> Proc:
        return self.spawn(name or f"relay-{service}", ["relay", service], env)

    def projector(self, env: dict[str, str], *, name: str = "projector") -> Proc:
        return self.spawn(name, ["project"], env)

    def restart(self, proc: Proc) -> Proc:
        proc.start()
        if proc.port is not None:
            wait_healthy(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            try:
                proc.stop(grace_s=5)
            except Exception:  # noqa: BLE001 - keep stopping the others
                pass

    def logs(self) -> dict[str, str]:
        return {proc.name: proc.log_text() for proc in self.procs}


def wait_healthy(proc: Proc, timeout_s: float = 60) -> None:
    assert proc.port is not None
    client = Client(proc.port, timeout_s=2, host=proc.host)

    def up() -> bool:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited with {proc.popen and proc.popen.returncode}:\n"
                                 f"{proc.log_text()[-3000:]}")
        return client.get("/healthz").status == 200

    try:
        wait_for(up, timeout_s, f"{proc.name} to answer /healthz on port {proc.port}")
    finally:
        client.close()


# ------------------------------------------------------------------------------------------------
# Settings and tokens of one test's stack
# ------------------------------------------------------------------------------------------------


@dataclass
class StackEnv:
    """The environment every process of one test shares (stores, broker, topics, keys)."""

    tmp: Path
    kafka: KafkaInfo | None
    """The broker and its credentials (None: a stack that never reaches Kafka)."""
    database: PostgresInfo | None
    topic_prefix: str = field(default_factory=lambda: f"r{uuid.uuid4().hex[:10]}.")
    extra: dict[str, str] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    """Every token issued for this stack: the log scans look for each of them."""
    provisioned: bool = False

    def env(self) -> dict[str, str]:
        values = {
            "IDO_DATA_DIR": str(self.tmp / "data"),
            "IDO_KEYS_DIR": str(self.tmp / "keys"),
            **(self.kafka.settings_env() if self.kafka is not None else {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}),
            "IDO_TOPIC_PREFIX": self.topic_prefix,
            "IDO_RELAY_POLL_INTERVAL_MS": "50",
            "IDO_READ_YOUR_WRITES_TIMEOUT_MS": "1000",
            "IDO_READY_TIMEOUT_MS": "1000",
            "IDO_CHECKPOINT_DIR": str(self.tmp / "checkpoints"),
            # the load posts while the awards are still on their way to the view (issue 15: opened years)
            "IDO_YEARS_OPEN_BEFORE_AWARD": "2024,2025",
            # the load and the fuzzing write far faster than a person: the limit itself is shown at its
            # configured value by tests/foundation/test_http_bounds.py
            "IDO_WRITE_RATE_LIMIT_PER_MINUTE": "1000000",
        }
        if self.database is not None:
            values.update(self.database.settings_env())
        else:
            values["IDO_EVENT_STORE"] = "sqlite"
        values.update(self.extra)
        if self.kafka is not None and not self.provisioned:
            # As `make run` does before it starts the processes: the stack's topics and every principal's ACLs.
            provision(load_settings(values))
            self.provisioned = True
        return values

    def settings(self) -> Settings:
        settings = load_settings(self.env())
        init_token_files(settings)
        return settings

    def token(self, role: str, municipality_code: str | None = None) -> str:
        settings = self.settings()
        token, _ = issue_token(  # one subject per caller, as before: a retry with a new token is its retry
            settings.jwt_private_key_file.read_bytes(), audience=SERVICE_NAMES, role=role,
            municipality_code=municipality_code, subject=municipality_code or role,
        )
        self.issued.append(token)
        return token

    def headers(self, role: str, municipality_code: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, municipality_code)}"}

    def kafka_passwords(self) -> list[str]:
        """Every Kafka password of the stack's broker: no log may hold one."""
        if self.kafka is None:
            return []
        folder = Path(self.kafka.credentials_dir)
        return [path.read_text().strip() for path in sorted(folder.glob("*.password"))]

    def secrets(self) -> list[str]:
        """The tokens issued for the stack and the broker's passwords (for ``assert_no_secrets``)."""
        return [*self.issued, *self.kafka_passwords()]


def fresh_database(server: PostgresInfo) -> PostgresInfo:
    name = f"res_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn("postgres"), autocommit=True, connect_timeout=10) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server.with_dbname(name)


def drop_database(server: PostgresInfo, database: PostgresInfo) -> None:
    try:
        with psycopg.connect(server.dsn("postgres"), autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database.dbname}" WITH (FORCE)')
    except psycopg.Error:
        pass


# ------------------------------------------------------------------------------------------------
# A broker and a database server of the test's own
# ------------------------------------------------------------------------------------------------


def _script(command: list[str], env: dict[str, str], timeout_s: float) -> str:
    done = subprocess.run(
        ["bash", *command], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout_s
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


class OwnKafka:
    """scripts/kafka.sh on free ports and a state dir of its own: stopped and restarted with its data."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.port = free_port()
        self.controller_port = free_port()
        self.env = {
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_STATE_DIR": str(state_dir),
            "KAFKA_CREDENTIALS_DIR": str(state_dir / "credentials"),
            "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
        }
        self.bootstrap = f"{HOST}:{self.port}"
        self.info = KafkaInfo(self.bootstrap, self.env["KAFKA_CREDENTIALS_DIR"])
        """Its credentials (kept with ``start_keeping_data``); a StackEnv on it provisions users and ACLs."""
        self.stops = 0

    def start(self) -> None:
        _script(["scripts/kafka.sh", "start"], self.env, 180)

    def stop(self) -> None:
        _script(["scripts/kafka.sh", "stop"], self.env, 90)
        self.stops += 1

    def start_keeping_data(self) -> None:
        _script(["scripts/kafka.sh", "start", "--keep-data"], {**self.env, "KAFKA_KEEP_DATA": "1"}, 180)


class OwnPostgres:
    """scripts/postgres.sh on a free port and a state dir of its own.

    ``start`` wipes its data; ``stop`` (pg_ctl stop -m fast) keeps it, and ``start_keeping_data``
    starts the same data dir again with pg_ctl (the script has no restart command).
    """

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.port = free_port()
        self.env = {"PG_STATE_DIR": str(state_dir), "PG_PORT": str(self.port)}
        self.stops = 0

    def start(self) -> PostgresInfo:
        _script(["scripts/postgres.sh", "start"], self.env, 180)
        return PostgresInfo(host=HOST, port=self.port, user="ido", password="ido", dbname="ido")

    def _recorded(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in (self.state_dir / "env").read_text().splitlines():
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                values[name] = shlex.split(value)[0] if value else ""
        return values

    def _pg_ctl(self, *args: str) -> None:
        recorded = self._recorded()
        command = [f"{recorded['PG_BIN_DIR']}/pg_ctl", "-D", recorded["PG_DATA_DIR"], *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, cwd="/", capture_output=True, text=True, timeout=90)
        if done.returncode != 0:
            raise AssertionError(f"pg_ctl {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def stop_fast(self) -> None:
        self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
        self.stops += 1

    def start_keeping_data(self) -> None:
        self._pg_ctl("start", "-w", "-t", "60", "-l", self._recorded()["PG_LOG_FILE"])

    def stop(self) -> None:
        _script(["scripts/postgres.sh", "stop"], self.env, 90)


# ------------------------------------------------------------------------------------------------
# Load
# ------------------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    bad_5xx: list[str] = field(default_factory=list)
    """5xx answers that are not a 503 with Retry-After."""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, answer: Answer, what: str) -> None:
        with self.lock:
            self.requests += 1
            self.by_status[answer.status] = self.by_status.get(answer.status, 0) + 1
            if answer.status >= 500 and not (answer.status == 503 and answer.retry_after):
                self.bad_5xx.append(f"{what}: {answer.status} {str(answer.body)[:300]}")

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
        }


@contextmanager
def running_threads(targets: list[Callable[[], None]]) -> Iterator[list[threading.Thread]]:
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    try:
        yield threads
    finally:
        for thread in threads:
            thread.join(timeout=120)


def assert_no_secrets(logs: dict[str, str], secrets: Sequence[str], personal: Sequence[str] = ()) -> int:
    """No token, no piece of one, and no personal datum in any captured log; returns lines scanned."""
    lines = 0
    found = []
    for name, text in logs.items():
        lines += text.count("\n")
        for secret in secrets:
            for piece in {secret, secret[-40:], secret.split(".")[-1]}:
                if piece and piece in text:
                    found.append(f"{name}: a token (or its signature) is in the log")
        for marker in SECRET_MARKERS:
            if marker in text:
                found.append(f"{name}: {marker!r} is in the log")
        for datum in personal:
            if datum in text:
                found.append(f"{name}: personal datum {datum!r} is in the log")
    assert not found, sorted(set(found))
    return lines


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
