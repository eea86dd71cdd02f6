"""Signed checkpoints: what the history was at a moment, so an auditor can show it has not changed.

A checkpoint holds, for every stream of every service's event store, its last position and chain
head, and for every partition of the three topics its end offset and a SHA-256 digest of every
message (key and value, in offset order) below it; with a UTC timestamp. It is signed with an
Ed25519 key (``IDO_CHECKPOINT_KEY_FILE``, created when missing, never in the repository) and
written under ``IDO_CHECKPOINT_DIR``. No checkpoint is signed over a store whose chains are broken.

``verify_checkpoint`` proves, with the public key only, that for every stream the event at the
checkpoint's position still has the recorded hash and the chain up to it is intact, and that the
topics still hold exactly the messages they held below the recorded offsets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from kafka import TopicPartition

from contracts.canonical import canonical_json, format_utc
from services.audit.chain import Break
from services.audit.sources import TopicReader, audit_kafka_config, audited_topics
from services.audit.verify import scan_store
from services.common.auth import ensure_keypair
from services.common.config import Settings
from services.common.definition import SERVICE_NAMES

log = logging.getLogger(__name__)

FORMAT = "ido-audit-checkpoint/1"


class CheckpointRefused(Exception):
    """The history is already broken: no checkpoint is signed over it."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _private_key(settings: Settings) -> Ed25519PrivateKey:
    ensure_keypair(settings.checkpoint_key_file, settings.checkpoint_public_key_file)
    key = serialization.load_pem_private_key(settings.checkpoint_key_file.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{settings.checkpoint_key_file} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


class _Digest:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.count = 0

    def add(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        for part in (key, value):
            if part is None:
                self.sha.update(b"\xff\xff\xff\xff")
            else:
                self.sha.update(len(part).to_bytes(4, "big"))
                self.sha.update(part)
        self.sha.update(offset.to_bytes(8, "big"))
        self.count += 1


def _topic_digests(
    settings: Settings, ends: dict[str, dict[str, int]] | None = None
) -> tuple[dict[str, dict[str, dict[str, Any]]], list[str]]:
    """{topic: {partition: {offset, digest, messages}}} up to ``ends`` (default: the end now)."""
    topics = sorted(ends) if ends is not None else audited_topics(settings)
    reader = TopicReader(audit_kafka_config(settings), topics)
    problems: list[str] = [f"topic {t} does not exist" for t in reader.missing_topics if ends is not None]
    try:
        if ends is None:
            stop = dict(reader.end_offsets)
        else:
            stop = {}
            for topic, partitions in ends.items():
                for partition, end in partitions.items():
                    tp = TopicPartition(topic, int(partition))
                    stop[tp] = end
                    held = reader.end_offsets.get(tp)
                    if held is None and end > 0:
                        problems.append(f"topic {topic} partition {partition} no longer exists")
                    elif held is not None and held < end:
                        problems.append(
                            f"topic {topic} partition {partition} holds {held} messages, the checkpoint covered {end}"
                        )
                    elif held is not None and reader.beginning_offsets.get(tp, 0) > 0:
                        problems.append(
                            f"topic {topic} partition {partition} starts at offset {reader.beginning_offsets[tp]}"
                        )
            stop = {tp: min(end, reader.end_offsets.get(tp, 0)) for tp, end in stop.items()}
        digests = {tp: _Digest() for tp in stop}
        for tp, records in reader.batches(stop_at=stop):
            digest = digests[tp]
            for record in records:
                digest.add(record.offset, record.key, record.value)
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for tp, end in sorted(stop.items(), key=lambda item: (item[0].topic, item[0].partition)):
            found.setdefault(tp.topic, {})[str(tp.partition)] = {
                "offset": end,
                "messages": digests[tp].count,
                "digest": digests[tp].sha.hexdigest(),
            }
        return found, problems
    finally:
        reader.close()


def make_checkpoint(
    settings: Settings, *, reason: str = "on demand", services: tuple[str, ...] = SERVICE_NAMES
) -> dict[str, Any]:
    """The signed checkpoint document (not written)."""
    created_at = format_utc(datetime.now(UTC))
    stores: dict[str, Any] = {}
    broken: list[Break] = []
    for service in services:
        scan = scan_store(settings, service)
        breaks = scan.chains.breaks()
        broken.extend(breaks)
        streams = {}
        for stream_id in sorted(scan.chains.links):
            head = scan.chains.head(stream_id)
            streams[stream_id] = {"position": head.position, "hash": head.hash}
        stores[service] = {"last_notification_id": scan.max_notification_id, "streams": streams}
    if broken:
        raise CheckpointRefused(
            "the history is broken, no checkpoint is signed over it: " + "; ".join(b.describe() for b in broken[:5])
        )
    topics: dict[str, Any] | None
    try:
        topics, _ = _topic_digests(settings)
        topics_error = None
    except Exception as error:  # noqa: BLE001 - the broker is down: the stores are still worth signing
        topics, topics_error = None, f"{type(error).__name__}: {error}"
    body = {
        "format": FORMAT,
        "created_at": created_at,
        "reason": reason,
        "topic_prefix": settings.topic_prefix,
        "stores": stores,
        "topics": topics,
        "topics_error": topics_error,
    }
    key = _private_key(settings)
    return {
        "checkpoint": body,
        "signature": {
            "algorithm": "Ed25519",
            "key_id": key_id(key.public_key()),
            "value": base64.b64encode(key.sign(canonical_json(body))).decode("ascii"),
        },
    }


def write_checkpoint(settings: Settings, *, reason: str = "on demand") -> Path:
    document = make_checkpoint(settings, reason=reason)
    settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    stamp = document["checkpoint"]["created_at"].replace(":", "").replace("-", "").replace(".", "")
    path = settings.checkpoint_dir / f"checkpoint-{stamp}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(path)
    log.info("checkpoint %s written (%s)", path, reason)
    return path


@dataclass
class CheckpointReport:
    path: str
    created_at: str | None = None
    problems: list[str] = field(default_factory=list)
    streams: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checkpoint": self.path, "created_at": self.created_at, "streams": self.streams,
                "problems": self.problems}

    def lines(self) -> list[str]:
        found = [f"checkpoint {self.path} of {self.created_at}: {self.streams} streams"]
        found += [f"CHANGED {p}" for p in self.problems]
        found.append("the history the checkpoint covered is unchanged" if self.ok else (
            f"{len(self.problems)} problem(s): the history changed since the checkpoint"
        ))
        return found


def verify_checkpoint(settings: Settings, path: Path, *, public_key_file: Path | None = None) -> CheckpointReport:
    report = CheckpointReport(str(path))
    document = json.loads(path.read_text(encoding="utf-8"))
    body, signature = document["checkpoint"], document["signature"]
    report.created_at = body.get("created_at")
    public_key = load_public_key(public_key_file or settings.checkpoint_public_key_file)
    if signature.get("key_id") != key_id(public_key):
        report.problems.append("signed with another key than the trusted public key")
        return report
    try:
        public_key.verify(base64.b64decode(signature["value"]), canonical_json(body))
    except InvalidSignature:
        report.problems.append("the signature does not match the checkpoint's content (the file was changed)")
        return report
    if body.get("format") != FORMAT:
        report.problems.append(f"unknown format {body.get('format')!r}")
        return report
    for service, recorded in body["stores"].items():
        scan = scan_store(settings, service)
        for stream_id, head in recorded["streams"].items():
            report.streams += 1
            position, expected = head["position"], head["hash"]
            broken = scan.chains.intact_through(stream_id, position)
            if broken is not None:
                report.problems.append(f"{broken.describe()}")
                continue
            found = scan.chains.links[stream_id][position].hash
            if found != expected:
                report.problems.append(
                    f"store {service}: stream {stream_id} position {position}: hash at the checkpoint {expected}, "
                    f"now {found}"
                )
    if body.get("topics"):
        ends = {t: {p: v["offset"] for p, v in parts.items()} for t, parts in body["topics"].items()}
        digests, problems = _topic_digests(settings, ends)
        report.problems.extend(problems)
        for topic, partitions in body["topics"].items():
            for partition, recorded_part in partitions.items():
                now = digests.get(topic, {}).get(partition)
                if now is None or now["offset"] < recorded_part["offset"]:
                    continue  # named above
                if now["digest"] != recorded_part["digest"]:
                    report.problems.append(
                        f"topic {topic} partition {partition}: the {recorded_part['offset']} messages below offset "
                        f"{recorded_part['offset']} are not those of the checkpoint (digest {recorded_part['digest']}, "
                        f"now {now['digest']})"
                    )
    return report


class CheckpointWorker:
    """Writes checkpoints in the background, one at a time; requests made meanwhile share the next one."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._reasons: list[str] = []
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self.written: list[Path] = []
        self.failures: list[str] = []

    def request(self, reason: str) -> None:
        with self._lock:
            self._reasons.append(reason)
            self._idle.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ido-checkpoint", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._reasons:
                    self._thread = None
                    self._idle.set()
                    return
                reasons, self._reasons = self._reasons, []
            try:
                self.written.append(write_checkpoint(self.settings, reason="; ".join(reasons)))
            except Exception as error:  # noqa: BLE001 - logged; `ido audit checkpoint` makes one on demand
                self.failures.append(f"{type(error).__name__}: {error}")
                log.exception("checkpoint for %s failed", "; ".join(reasons))

    def wait(self, timeout_s: float = 60) -> bool:
        return self._idle.wait(timeout_s)


_WORKERS: dict[Path, CheckpointWorker] = {}
_WORKERS_LOCK = threading.Lock()


def checkpoint_worker(settings: Settings) -> CheckpointWorker:
    with _WORKERS_LOCK:
        worker = _WORKERS.get(settings.checkpoint_dir)
        if worker is None or worker.settings != settings:
            worker = _WORKERS[settings.checkpoint_dir] = CheckpointWorker(settings)
        return worker


def checkpoint_on_year_closed(settings: Settings, answer: dict[str, Any]) -> None:
    """The ledger's close command calls this after a year's ``YearClosed`` is stored."""
    checkpoint_worker(settings).request(
        f"year {answer['grant_year']} closed for {answer['municipality_code']} (event {answer['event_id']})"
    )
