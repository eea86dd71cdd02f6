"""Processes the benchmark starts: `ido serve`, the bare server, `ido relay`, `ido project`.

Each is started by the benchmark, remembered by its pid and ended by that pid (SIGTERM, then
SIGKILL after a grace period), never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
IDO = [PYTHON, "-m", "services.common.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            argv, cwd=REPO, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def peak_rss_mb(self) -> float:
        """VmHWM (peak resident set) of the process, in MiB."""
        peak = _peak_rss_mb(self.pid)
        if peak is None:
            raise RuntimeError(f"{self.name}: no VmHWM")
        return peak

    def tree_peak_rss_mb(self) -> float:
        """The process's VmHWM plus its live children's (the projector's forked checker): a sum of
        peaks, never less than what they held at once."""
        children = 0.0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _parent_pid(entry) == self.pid:
                children += _peak_rss_mb(int(entry.name)) or 0.0
        return self.peak_rss_mb() + children

    def tree_cpu_s(self) -> float:
        """CPU seconds (user + system) of the process and its live descendants (gunicorn's workers, the
        projector's checker) so far: row 5 divides their growth by the requests to say where the time went."""
        tree, total = [self.pid], 0.0
        parents = {pid: _parent_pid(Path(f"/proc/{pid}")) for pid in _all_pids()}
        while tree:
            pid = tree.pop()
            total += cpu_s(pid)
            tree.extend(child for child, parent in parents.items() if parent == pid)
        return total

    def stop(self, grace_s: float = 15) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                # the process group is ours (start_new_session): its workers go with it
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_http(process: Process, port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer on port {port} within {timeout_s} s:\n{process.tail()}")


def start_ledger_server(
    env: dict[str, str], log_dir: Path, *, workers: int, threads: int, name: str, wait: bool = True
) -> tuple[Process, int]:
    """`ido serve ledger` exactly as in production (gunicorn, gthread), on a free port."""
    port = free_port()
    process = Process(
        name, [*IDO, "serve", "ledger", "--port", str(port), "--workers", str(workers), "--threads", str(threads)],
        env, log_dir,
    )
    if wait:
        wait_http(process, port)
    return process, port


def start_bare_server(
    log_dir: Path, *, workers: int, threads: int, name: str, wait: bool = True
) -> tuple[Process, int]:
    port = free_port()
    process = Process(
        name, [PYTHON, "-m", "bench.bare", "--port", str(port), "--workers", str(workers), "--threads", str(threads)],
        {}, log_dir,
    )
    if wait:
        wait_http(process, port)
    return process, port


def start_crud_server(
    env: dict[str, str], log_dir: Path, *, workers: int, threads: int, name: str, wait: bool = True
) -> tuple[Process, int]:
    """One durable row per posting (bench/crud.py) in the store of ``env``, on a free port."""
    port = free_port()
    process = Process(
        name, [PYTHON, "-m", "bench.crud", "--port", str(port), "--workers", str(workers), "--threads", str(threads)],
        env, log_dir,
    )
    if wait:
        wait_http(process, port)
    return process, port


def start_relay(env: dict[str, str], log_dir: Path, name: str) -> Process:
    return Process(name, [*IDO, "relay", "ledger"], env, log_dir)


def start_projector(env: dict[str, str], log_dir: Path, name: str) -> Process:
    return Process(name, [*IDO, "project"], env, log_dir)


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass  # ended meanwhile
    return None


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process so far; 0 once it has ended."""
    try:
        # after the command's closing parenthesis: fields 3.. of proc(5); utime and stime are 14 and 15
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return 0.0  # ended meanwhile


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def servers_cpu_s() -> dict[str, float]:
    """CPU seconds so far of the database and broker servers of this machine, by kind: every process
    named ``postgres`` (its backends too) and every ``java`` (the broker). Row 5 shows their share of a
    request beside the project's processes; processes that ended meanwhile are not counted."""
    totals = {"postgres": 0.0, "kafka": 0.0}
    for pid in _all_pids():
        try:
            name = Path(f"/proc/{pid}/comm").read_text(encoding="ascii").strip()
        except OSError:
            continue
        kind = "postgres" if name == "postgres" else "kafka" if name == "java" else None
        if kind is not None:
            totals[kind] += cpu_s(pid)
    return totals


def _parent_pid(proc_dir: Path) -> int | None:
    try:
        # after the command's closing parenthesis: state, then the parent's pid
        return int((proc_dir / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
