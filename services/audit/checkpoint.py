"""Signed tree heads ("checkpoints") over Merkle trees of every event store and topic partition.

A checkpoint (``ido-checkpoint/2``) is one JSON object: ``created_at`` (UTC, taken before the logs
are read), ``key_id``, ``topic_prefix``, ``reason``, ``backdating_grace_s``, and for every log (see
``services/audit/logs.py``) its ``size`` and Merkle ``root`` (RFC 9162, hex); ``signature`` is the
Ed25519 signature (base64) over the canonical JSON of all the rest. The leaves themselves go to the
append-only ``leaves.sqlite`` beside the heads (``services/audit/leaves.py``).

``write_checkpoint`` (``ido audit checkpoint``) signs a head only over logs that extend what was
signed before: it compares every log with the leaves already written and with the latest head, and
refuses, naming the first event that differs, when they do not. ``verify_since`` (``ido audit verify
--since``) proves the logs now extend a given head, or names the first event that breaks it.
``run_every`` is the checkpoint process (``ido audit checkpoint --every SECONDS``): the signing key
is used there and nowhere else.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts.canonical import format_utc, parse_utc
from contracts.ido_verify import HEAD_FORMAT, head_problems, signed_bytes
from contracts.merkle import TreeBuilder, leaf_hash
from services.audit.leaves import FILE_NAME, LeafFile, StoredLeaf
from services.audit.logs import TOPIC, Leaf, TopicLogs, store_leaves, store_log, where
from services.audit.signing import key_id, load_public_key, signing_key
from services.common.config import Settings
from services.common.definition import SERVICE_NAMES

log = logging.getLogger(__name__)

FORMAT = HEAD_FORMAT
BACKDATING_GRACE_S = 60
"""An event appended after a head is flagged as backdated when its ``recorded_at`` lies more than
this before the head's ``created_at``. The margin is for an honest write that took its timestamp
just before the head was made and committed just after its logs were read (and for clock skew
between hosts); it is signed in every head."""

_FINDINGS_PER_KIND = 20


class CheckpointRefused(Exception):
    """The logs do not extend what was signed before: no head is signed over them."""


@dataclass(frozen=True)
class Finding:
    log: str
    index: int | None
    kind: str
    """changed, inserted, removed, reordered, shrank, content, backdated, missing, unverifiable, head"""
    message: str
    event_id: str | None = None
    where: str | None = None

    def describe(self) -> str:
        at = "" if self.index is None else f" position {self.index}"
        place = f" ({self.where})" if self.where else ""
        return f"{self.log}{at}{place}: {self.kind}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "log": self.log, "position": self.index, "kind": self.kind, "event_id": self.event_id,
            "where": self.where, "message": self.message,
        }


def _who(event_id: str | None, log_name: str, source: int) -> str:
    return f"event {event_id or '(no event id)'} ({where(log_name, source)})"


class LogTally:
    """One log's current leaves, fed in order, against what was signed before.

    ``reference`` are rows of the leaves file known to match a signed root (or the rows the
    checkpoint process wrote itself); the first position where the log differs from them is
    classified and named. ``covered`` is a head's (size, root) for the log: the first ``size``
    leaves must give the root. Leaves after ``covered`` whose ``recorded_at`` is before
    ``backdated_before`` are flagged. ``sink`` receives the leaves from position ``sink_from`` on.
    """

    def __init__(
        self,
        name: str,
        *,
        reference: LeafFile | None = None,
        reference_size: int = 0,
        covered: tuple[int, bytes] | None = None,
        backdated_before: datetime | None = None,
        sink: Callable[[str, int, Leaf], None] | None = None,
        sink_from: int = 0,
    ):
        self.name = name
        self.reference = reference if reference_size else None
        self.reference_size = reference_size if reference is not None else 0
        self._rows: Iterator[StoredLeaf] | None = (
            reference.rows(name, 0, reference_size) if reference is not None and reference_size else None
        )
        self.covered = covered
        self.covered_root: bytes | None = None if covered is None or covered[0] else TreeBuilder().root()
        self.backdated_before = backdated_before
        self.sink = sink
        self.sink_from = sink_from
        self.tree = TreeBuilder()
        self.divergence: tuple[int, Leaf, StoredLeaf] | None = None
        self._divergence_next: Leaf | None = None
        self._awaiting_next = False
        self.findings: list[Finding] = []
        self._counts: dict[str, int] = {}

    @property
    def size(self) -> int:
        return self.tree.size

    def root(self) -> bytes:
        return self.tree.root()

    def _note(self, finding: Finding) -> None:
        seen = self._counts.get(finding.kind, 0)
        self._counts[finding.kind] = seen + 1
        if seen < _FINDINGS_PER_KIND:
            self.findings.append(finding)

    def feed(self, leaf: Leaf) -> None:
        index = self.tree.size
        self.tree.add(leaf_hash(leaf.input))
        if self.covered is not None and self.tree.size == self.covered[0]:
            self.covered_root = self.tree.root()
        if self._awaiting_next:
            self._divergence_next, self._awaiting_next = leaf, False
        if self._rows is not None and self.divergence is None and index < self.reference_size:
            row = next(self._rows, None)
            if row is None or row.position != index:  # the leaves file skips a position: no longer a reference
                self._rows = None
            elif row.leaf != leaf.input:
                self.divergence = (index, leaf, row)
                self._awaiting_next = True
        if leaf.content_problem is not None:
            self._note(Finding(self.name, index, "content", f"{_who(leaf.event_id, self.name, leaf.source)}: "
                               f"{leaf.content_problem}", leaf.event_id, where(self.name, leaf.source)))
        if (
            self.backdated_before is not None
            and index >= (self.covered[0] if self.covered else 0)
            and leaf.recorded_at is not None
            and _before(leaf.recorded_at, self.backdated_before)
        ):
            self._note(Finding(
                self.name, index, "backdated",
                f"{_who(leaf.event_id, self.name, leaf.source)} was added after the checkpoint but recorded at "
                f"{leaf.recorded_at}, before it: an insertion the checkpoint does not cover",
                leaf.event_id, where(self.name, leaf.source),
            ))
        if self.sink is not None and index >= self.sink_from:
            self.sink(self.name, index, leaf)

    def finish(self) -> list[Finding]:
        """Everything found, the first breaking position first."""
        found = list(self.findings)
        size = self.tree.size
        if self.divergence is not None:
            found.append(self._classify(*self.divergence))
        elif self._rows is not None and size < self.reference_size and self.reference is not None:
            gone = self.reference.row(self.name, size)
            event_id, source = (gone.event_id, gone.source) if gone else (None, 0)
            found.append(Finding(
                self.name, size, "removed",
                f"{_who(event_id, self.name, source)} of the checkpoint is gone: the log now ends after "
                f"{size} of the {self.reference_size} events it held",
                event_id, where(self.name, source),
            ))
        if self.covered is not None:
            covered_size, covered_root = self.covered
            if size < covered_size:
                if not any(f.kind in ("removed", "changed", "inserted", "reordered") for f in found):
                    found.append(Finding(
                        self.name, size, "shrank", f"the log holds {size} leaves, the checkpoint covered {covered_size}"
                    ))
            elif self.covered_root != covered_root and not any(
                f.kind in ("removed", "changed", "inserted", "reordered") for f in found
            ):
                found.append(Finding(
                    self.name, None, "changed",
                    f"the first {covered_size} leaves no longer give the signed root (the leaves file cannot "
                    "name the position)",
                ))
        return sorted(found, key=_order)

    def _classify(self, index: int, now: Leaf, then: StoredLeaf) -> Finding:
        assert self.reference is not None
        then_next = self.reference.row(self.name, index + 1) if index + 1 < self.reference_size else None
        now_next = self._divergence_next
        removed = then_next is not None and then_next.leaf == now.input
        inserted = now_next is not None and now_next.input == then.leaf
        current, previous = _who(now.event_id, self.name, now.source), _who(then.event_id, self.name, then.source)
        if removed and not inserted:
            return Finding(self.name, index, "removed",
                           f"{previous} of the checkpoint is gone; {current} follows in its place",
                           then.event_id, where(self.name, then.source))
        if inserted and not removed:
            return Finding(self.name, index, "inserted",
                           f"{current} was inserted before the checkpoint's {previous}",
                           now.event_id, where(self.name, now.source))
        moved_from = None if removed else self.reference.search(self.name, now.input, index + 1, self.reference_size)
        if removed or moved_from is not None:
            was = f" (the checkpoint had it at position {moved_from})" if moved_from is not None else ""
            return Finding(self.name, index, "reordered",
                           f"{current} is out of order{was}; the checkpoint had {previous} here",
                           now.event_id, where(self.name, now.source))
        return Finding(self.name, index, "changed",
                       f"{current} is not the checkpoint's {previous}", now.event_id, where(self.name, now.source))


_KIND_ORDER = {"content": 1, "backdated": 2}


def _order(finding: Finding) -> tuple[bool, int, int]:
    """By position; at one position the break of the sequence first, then content, then backdating."""
    return finding.index is None, finding.index or 0, _KIND_ORDER.get(finding.kind, 0)


def _before(recorded_at: str, moment: datetime) -> bool:
    try:
        return parse_utc(recorded_at) < moment
    except ValueError:
        return False


# -- heads -------------------------------------------------------------------------------------


def read_head(path: Path) -> dict[str, Any]:
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"checkpoint {path} is not readable JSON ({error})") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        found = head.get("format") if isinstance(head, dict) else None
        if isinstance(head, dict) and isinstance(head.get("checkpoint"), dict):
            found = head["checkpoint"].get("format")
        raise ValueError(f"checkpoint {path} is of format {found!r}, not {FORMAT} (make a new one)")
    return head


def head_paths(directory: Path) -> list[Path]:
    """The heads in ``directory``, newest first (their names sort by creation)."""
    return sorted(directory.glob("checkpoint-*.json"), reverse=True)


def latest_head(directory: Path, public_key: Any) -> tuple[Path, dict[str, Any]] | None:
    """The newest head in ``directory`` signed by ``public_key``."""
    for path in head_paths(directory):
        try:
            head = read_head(path)
        except ValueError:
            continue
        if not head_problems(head, public_key):
            return path, head
        log.warning("checkpoint %s is not validly signed by the checkpoint key: ignored", path)
    return None


def leaves_file_for(settings: Settings, head_path: Path | None = None, given: Path | None = None) -> Path:
    if given is not None:
        return given
    if head_path is not None and (head_path.parent / FILE_NAME).exists():
        return head_path.parent / FILE_NAME
    return settings.checkpoint_dir / FILE_NAME


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _covered(head: dict[str, Any] | None, name: str) -> tuple[int, bytes] | None:
    if head is None or name not in head["logs"]:
        return None
    entry = head["logs"][name]
    return entry["size"], bytes.fromhex(entry["root"])


def _backdating_horizon(head: dict[str, Any] | None) -> datetime | None:
    if head is None:
        return None
    return parse_utc(head["created_at"]) - timedelta(seconds=head.get("backdating_grace_s", BACKDATING_GRACE_S))


def make_checkpoint(settings: Settings, *, reason: str = "on demand") -> tuple[Path, dict[str, Any]]:
    """Signs and writes a head over every log now; refuses when a log does not extend the signed ones."""
    directory = settings.checkpoint_dir
    with _exclusive(directory):
        key = signing_key(settings.checkpoint_key_file, settings.checkpoint_public_key_file)
        created_at = datetime.now(UTC)
        previous = latest_head(directory, key.public_key())
        previous_head = previous[1] if previous else None
        if previous_head is not None and previous_head.get("topic_prefix") != settings.topic_prefix:
            raise ValueError(
                f"the checkpoints in {directory} are of topic prefix {previous_head.get('topic_prefix')!r}, "
                f"the settings say {settings.topic_prefix!r}"
            )
        horizon = _backdating_horizon(previous_head)
        leaves = LeafFile(directory / FILE_NAME, create=True)
        try:
            leaves.begin()
            findings: list[Finding] = []
            logs: dict[str, dict[str, Any]] = {}

            def tally(name: str, backdated_before: datetime | None) -> LogTally:
                held = leaves.count(name)
                return LogTally(
                    name, reference=leaves, reference_size=held, covered=_covered(previous_head, name),
                    backdated_before=backdated_before, sink=_append_to(leaves), sink_from=held,
                )

            for service in SERVICE_NAMES:
                store = tally(store_log(service), horizon)
                for leaf in store_leaves(settings, service):
                    store.feed(leaf)
                findings += store.finish()
                logs[store.name] = {"size": store.size, "root": store.root().hex()}
            topics_error = None
            held_before: dict[str, int] = {}
            tallies: dict[str, LogTally] = {}
            try:
                with TopicLogs(settings) as topic_logs:
                    for name in sorted(topic_logs.names.values()):
                        held_before[name] = leaves.count(name)
                        tallies[name] = tally(name, None)
                    for name, leaf in topic_logs.leaves():
                        tallies[name].feed(leaf)
            except Exception as error:  # noqa: BLE001 - the broker is down: the stores are still worth signing
                leaves.discard(set(tallies), held_before)
                topics_error = f"{type(error).__name__}: {error}"
                tallies = {}
            for name, topic in tallies.items():
                findings += topic.finish()
                logs[name] = {"size": topic.size, "root": topic.root().hex()}
            for name, covered in (previous_head or {}).get("logs", {}).items():
                if name.startswith(TOPIC) and tallies and name not in tallies and covered["size"]:
                    findings.append(Finding(name, None, "missing", "the partition no longer exists"))
            if findings:
                raise CheckpointRefused(
                    "the logs do not extend what was signed before, no checkpoint is signed over them: "
                    + "; ".join(f.describe() for f in findings[:5])
                    + (f" (and {len(findings) - 5} more)" if len(findings) > 5 else "")
                )
            head: dict[str, Any] = {
                "format": FORMAT,
                "created_at": format_utc(created_at),
                "key_id": key_id(key.public_key()),
                "topic_prefix": settings.topic_prefix,
                "reason": reason,
                "backdating_grace_s": BACKDATING_GRACE_S,
                "logs": logs,
            }
            if topics_error is not None:
                head["topics_error"] = topics_error
            head["signature"] = base64.b64encode(key.sign(signed_bytes(head))).decode("ascii")
            leaves.commit()  # the leaves first: a head never exists without them
        except BaseException:
            leaves.rollback()
            raise
        finally:
            leaves.close()
        stamp = head["created_at"].replace(":", "").replace("-", "").replace(".", "")
        path = directory / f"checkpoint-{stamp}.json"
        temporary = directory / f".{path.name}.tmp"
        temporary.write_text(json.dumps(head, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temporary, path)
        return path, head


def _append_to(leaves: LeafFile) -> Callable[[str, int, Leaf], None]:
    def append(name: str, index: int, leaf: Leaf) -> None:
        leaves.append(name, index, leaf.input, leaf.event_id, leaf.source)

    return append


def write_checkpoint(settings: Settings, *, reason: str = "on demand") -> Path:
    path, head = make_checkpoint(settings, reason=reason)
    sizes = ", ".join(f"{name} {entry['size']}" for name, entry in sorted(head["logs"].items()))
    log.info("checkpoint %s written (%s): %s", path, reason, sizes)
    return path


# -- verify --since ------------------------------------------------------------------------------


@dataclass
class SinceReport:
    path: str
    created_at: str | None = None
    findings: list[Finding] = field(default_factory=list)
    logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def first_breaks(self) -> dict[str, Finding]:
        """Per log, the finding at its first breaking position."""
        first: dict[str, Finding] = {}
        for finding in self.findings:
            first.setdefault(finding.log, finding)
        return first

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "checkpoint": self.path, "created_at": self.created_at, "logs": self.logs,
            "first_breaks": {name: f.as_dict() for name, f in self.first_breaks().items()},
            "findings": [f.as_dict() for f in self.findings], "notes": self.notes,
        }

    def lines(self) -> list[str]:
        found = [f"checkpoint {self.path} of {self.created_at}"]
        for name, entry in sorted(self.logs.items()):
            found.append(f"{name}: {entry['size_then']} leaves signed, {entry['size_now']} now")
        found += [f"NOTE {n}" for n in self.notes]
        found += [f"FIRST BREAK {f.describe()}" for f in self.first_breaks().values()]
        first = set(map(id, self.first_breaks().values()))
        found += [f"ALSO {f.describe()}" for f in self.findings if id(f) not in first]
        found.append(
            "every log extends the checkpoint: nothing it covered was changed, removed, inserted or reordered"
            if self.ok else f"{len(self.findings)} finding(s): the history does not extend the checkpoint"
        )
        return found


def verify_since(
    settings: Settings,
    path: Path,
    *,
    public_key_file: Path | None = None,
    leaves_file: Path | None = None,
    stores: bool = True,
    topics: bool = True,
) -> SinceReport:
    head = read_head(path)
    public_key = load_public_key(public_key_file or settings.checkpoint_public_key_file)
    report = SinceReport(str(path), head.get("created_at"))
    problems = head_problems(head, public_key)
    if problems:
        report.findings += [Finding("head", None, "head", problem) for problem in problems]
        return report
    if topics and head.get("topic_prefix") != settings.topic_prefix:
        raise ValueError(
            f"the checkpoint is of topic prefix {head.get('topic_prefix')!r}, "
            f"the settings say {settings.topic_prefix!r} (--stores-only checks the stores alone)"
        )
    leaves_path = leaves_file_for(settings, path, leaves_file)
    leaves = LeafFile(leaves_path) if leaves_path.exists() else None
    if leaves is None:
        report.notes.append(f"no leaves file {leaves_path}: a break is found but its position cannot be named")
    horizon = _backdating_horizon(head)
    try:
        def tally(name: str, backdated_before: datetime | None) -> LogTally:
            covered = _covered(head, name)
            assert covered is not None
            usable = leaves is not None and leaves.prefix_root(name, covered[0]) == covered[1]
            if leaves is not None and not usable:
                report.notes.append(f"{name}: {leaves_path} does not match the signed root: positions cannot be named")
            return LogTally(name, reference=leaves if usable else None, reference_size=covered[0] if usable else 0,
                            covered=covered, backdated_before=backdated_before)

        tallies: list[LogTally] = []
        for service in SERVICE_NAMES if stores else ():
            name = store_log(service)
            if name not in head["logs"]:
                report.notes.append(f"{name} is not in the checkpoint")
                continue
            store = tally(name, horizon)
            for leaf in store_leaves(settings, service):
                store.feed(leaf)
            tallies.append(store)
        topic_names = sorted(name for name in head["logs"] if name.startswith(TOPIC) and topics)
        if not stores or not topics:
            report.notes.append(f"only the {'stores' if stores else 'topics'} were checked")
        if head.get("topics_error"):
            report.notes.append(f"the checkpoint has no topic logs ({head['topics_error']})")
        if topic_names:
            logical = sorted({name[len(TOPIC):].rsplit("/", 1)[0] for name in topic_names})
            with TopicLogs(settings, logical) as topic_logs:
                present = set(topic_logs.names.values())
                by_name = {name: tally(name, None) for name in topic_names if name in present}
                for name, leaf in topic_logs.leaves():
                    if name in by_name:
                        by_name[name].feed(leaf)
            for name in sorted(present - set(topic_names)):
                report.notes.append(f"{name} is new since the checkpoint")
            for name in topic_names:
                if name not in by_name:
                    report.findings.append(Finding(name, None, "missing", "the partition no longer exists"))
                    report.logs[name] = {"size_then": head["logs"][name]["size"], "size_now": 0}
            tallies += by_name.values()
        for one in tallies:
            report.findings += one.finish()
            report.logs[one.name] = {"size_then": head["logs"][one.name]["size"], "size_now": one.size}
    finally:
        if leaves is not None:
            leaves.close()
    order = {name: n for n, name in enumerate(sorted(report.logs))}
    report.findings.sort(key=lambda f: (order.get(f.log, -1), *_order(f)))
    return report


# -- the checkpoint process ----------------------------------------------------------------------


def run_every(
    settings: Settings, every_s: float, *, reason: str = "scheduled", stop: threading.Event | None = None
) -> int:
    """Writes a checkpoint every ``every_s`` seconds until SIGTERM or SIGINT (or ``stop``).

    A refused or failed checkpoint is logged and tried again at the next tick (a setup error, such
    as a public key without its private key, ends the process: exit 2); a signal lets the
    checkpoint under way finish (heads and leaves are written atomically, so even a kill loses at
    most that one) and then ends the loop.
    """
    if every_s <= 0:
        raise ValueError("--every must be a positive number of seconds")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    log.info("checkpoint process: a signed head every %s s in %s", every_s, settings.checkpoint_dir)
    while not stop.is_set():
        try:
            write_checkpoint(settings, reason=reason)
        except CheckpointRefused as refused:
            log.error("checkpoint refused: %s", refused)
        except ValueError:
            raise  # a setup error (the key, a setting): exit 2 rather than fail every tick
        except Exception:  # noqa: BLE001 - the store or the broker away: the next tick tries again
            log.exception("checkpoint failed")
        stop.wait(every_s)
    log.info("checkpoint process stopped")
    return 0
