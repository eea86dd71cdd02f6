"""A service's side of provenance: its record key, its Ed25519 signing keys, and the relay's seals.

Files under ``<IDO_KEYS_DIR>/signing/`` (never in the repository):

- ``<service>/record.key``: 32 random bytes. The service's own process adds
  ``record_mac`` = HMAC-SHA256(record key, the 32 bytes of the event's hash) to every chained event
  it stores (``RecordMacMapper``). Someone who can write the store but has not this key cannot
  make an event the relay will seal.
- ``<service>/<kid>.pem``: an Ed25519 private key (PKCS#8 PEM), one per key the service has had.
- ``<service>/keyset.json``: the service's public key set, with each key's validity; the relay
  signs with the key valid now, the service serves the set at ``/.well-known/ido-keyset.json``.
- ``keyset.json``: every service's public keys together (the default trusted key set of consumers,
  ``IDO_TRUSTED_KEYSET_FILE``), brought up to date whenever a service's own set changes.

Secret files are created with mode 0600, atomically (written to a temporary file opened with
``O_CREAT|O_EXCL``, then linked into place, which fails if another process was first), so two
processes starting together end up with the same key. A missing public file never makes a new
private key: it is derived again from the private key.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from contracts.canonical import format_utc
from contracts.merkle import all_inclusion_paths, leaf_hash
from contracts.provenance import (
    PROOF_HEADER,
    SEAL_HEADER,
    KeySet,
    ProvenanceCheck,
    PublicKey,
    b64url,
    key_id,
    proof_header,
    public_key_entry,
    seal_header,
    seal_statement,
    statement_bytes,
)
from services.common.config import Settings
from services.common.secret_files import create_exclusive, ensure_secret

log = logging.getLogger(__name__)

RECORD_KEY_BYTES = 32


# -- files ---------------------------------------------------------------------------------------


def _write_public(path: Path, content: str) -> None:
    """Replaces a public file atomically (readers see the old or the new file, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    temporary.write_text(content, encoding="utf-8")
    os.replace(temporary, path)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_record_key(path: Path) -> bytes:
    """The service's record key, created (32 random bytes, 0600) when missing."""
    return ensure_secret(path, RECORD_KEY_BYTES)


def record_mac(record_key: bytes, event_hash: str) -> str:
    return hmac.digest(record_key, bytes.fromhex(event_hash), "sha256").hex()


# -- the writer's MAC, added where eventsourcing maps events to stored events ----------------------


class RecordMacMapper(Mapper[Any]):
    """eventsourcing's Mapper, adding ``record_mac`` to each stored chained event when it has a
    ``record_key`` (set by ``build_application``), and dropping it again when events are read back:
    the domain never sees it."""

    record_key: bytes | None = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        key = self.record_key
        event_hash = getattr(domain_event, "hash", None)
        if key is None or not isinstance(event_hash, str):
            return super().to_stored_event(domain_event)
        event_state = dict(vars(domain_event))  # as Mapper.to_stored_event, with the MAC added
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        return self.stored_event_of(originator_id, originator_version, get_topic(domain_event.__class__), event_state)

    def stored_event_of(
        self, originator_id: Any, originator_version: int, topic: str, event_state: dict[str, Any]
    ) -> StoredEvent:
        """The stored event of a chained event's state (its ``vars`` without the originator's id and version),
        with the writer's MAC when this mapper has the record key: also how `ido recover store` writes an
        event read back from its topic, so it is stored as the service would have stored it."""
        if self.record_key is not None and isinstance(event_state.get("hash"), str):
            event_state = {**event_state, "record_mac": record_mac(self.record_key, event_state["hash"])}
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        domain_event = super().to_domain_event(stored_event)
        vars(domain_event).pop("record_mac", None)
        return domain_event


# -- signing keys ----------------------------------------------------------------------------------


def _now() -> str:
    return format_utc(datetime.now(UTC))


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def _entry(service: str, raw: bytes, topics: Sequence[str], not_before: str, not_after: str | None) -> PublicKey:
    return public_key_entry(
        {"kid": key_id(service, raw), "service": service, "alg": "Ed25519", "public_key": b64url(raw),
         "topics": list(topics), "not_before": not_before, "not_after": not_after}
    )


class ServiceKeys:
    """One service's signing keys in ``<IDO_KEYS_DIR>/signing/<service>/``."""

    def __init__(self, signing_dir: Path, service: str, topics: Sequence[str]):
        self.signing_dir = signing_dir
        self.service = service
        self.topics = tuple(topics)
        self.directory = signing_dir / service
        self.keyset_file = self.directory / "keyset.json"
        self.published_file = signing_dir / "keyset.json"
        self._lock_handle: Any = None

    def private_file(self, kid: str) -> Path:
        return self.directory / f"{kid}.pem"

    def keyset(self) -> KeySet:
        return KeySet.load(self.keyset_file)

    def ensure(self) -> KeySet:
        """Makes sure the service has a current key (created on first start); returns its key set."""
        with _locked(self.directory):
            keyset = self._recovered()
            now = _now()
            if not any(k.valid_at(now) is None and self.private_file(k.kid).exists() for k in keyset.keys):
                if any(k.not_after is None for k in keyset.keys):
                    current = next(k for k in keyset.keys if k.not_after is None)
                    if not self.private_file(current.kid).exists():
                        raise ValueError(
                            f"signing key {current.kid}: the private key {self.private_file(current.kid)} is missing; "
                            f"restore it or run `ido keys rotate {self.service}`"
                        )
                else:
                    keyset = self._add_key(keyset, now)
            self._publish(keyset)
            return keyset

    def rotate(self, now: str | None = None) -> PublicKey:
        """A new key signs from ``now`` on; the key that was current is retired at ``now``."""
        with _locked(self.directory):  # the relay seals under a shared lock of this file: no seal straddles it
            keyset = self._recovered()
            now = now or _now()
            retired = [
                public_key_entry({**k.as_dict(), "not_after": now}) if k.not_after is None or k.not_after > now else k
                for k in keyset.keys
            ]
            keyset = self._add_key(KeySet(tuple(retired)), now)
            self._publish(keyset)
            return next(k for k in keyset.keys if k.not_before == now and k.not_after is None)

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Held while a batch is sealed: a rotation (exclusive) happens before or after, never during."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._lock_handle is None:
            self._lock_handle = (self.directory / ".lock").open("a")
        fcntl.flock(self._lock_handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)

    def _recovered(self) -> KeySet:
        """The service's key set; rebuilt from its one private key when the public file is gone."""
        if self.keyset_file.exists():
            return self.keyset()
        private = sorted(self.directory.glob(f"{self.service}-*.pem"))
        if not private:
            return KeySet()
        if len(private) > 1:
            raise ValueError(
                f"{self.keyset_file} is missing and {len(private)} private keys are there: restore the key set "
                "(which says when each key was valid) from a copy, e.g. the published one"
            )
        key = _load_private(private[0])
        not_before = format_utc(datetime.fromtimestamp(private[0].stat().st_mtime, UTC))
        entry = _entry(self.service, _raw_public(key), self.topics, not_before, None)
        log.warning("signing keys of %s: %s was missing; rebuilt from %s", self.service, self.keyset_file, private[0])
        return KeySet((entry,))

    def _add_key(self, keyset: KeySet, now: str) -> KeySet:
        key = Ed25519PrivateKey.generate()
        entry = _entry(self.service, _raw_public(key), self.topics, now, None)
        if not create_exclusive(self.private_file(entry.kid), _private_pem(key)):
            raise ValueError(f"{self.private_file(entry.kid)} exists already")
        return keyset.merged([entry])

    def _publish(self, keyset: KeySet) -> None:
        text = json.dumps(keyset.document(), indent=2, sort_keys=True) + "\n"
        if not self.keyset_file.exists() or self.keyset_file.read_text(encoding="utf-8") != text:
            _write_public(self.keyset_file, text)
        with _locked(self.signing_dir):
            published = KeySet.load(self.published_file)
            others = [k for k in published.keys if k.service != self.service]
            combined = KeySet(tuple(others)).merged(keyset.keys)
            text = json.dumps(combined.document(), indent=2, sort_keys=True) + "\n"
            if not self.published_file.exists() or self.published_file.read_text(encoding="utf-8") != text:
                _write_public(self.published_file, text)


# -- the relay's seals ------------------------------------------------------------------------------


@dataclass
class _SigningKey:
    entry: PublicKey
    private: Ed25519PrivateKey


@dataclass
class SealStats:
    sealed: int = 0
    batches: int = 0
    unsealed: int = 0
    """Events published without a seal: their record MAC was missing or wrong."""
    unsealed_event_ids: list[str] = field(default_factory=list)


class Sealer:
    """Seals the relay's batches: checks each stored event's record MAC, builds one Merkle tree over
    the hashes of those whose MAC is right, signs one statement, and gives each message its headers.

    The signing key is the one of the service's key set that is valid now; the set's file is looked
    at once per batch (its modification time), so ``ido keys rotate`` takes effect without a restart.
    """

    def __init__(self, *, service: str, topic: str, record_key: bytes, keys: ServiceKeys):
        self.service = service
        self.topic = topic
        self.record_key = record_key
        self.keys = keys
        self.stats = SealStats()
        self._stamp: tuple[int, int] | None = None
        self._current: _SigningKey | None = None

    def _signing_key(self, now: str) -> _SigningKey | None:
        """The key valid at ``now`` (None when there is none: ``ServiceKeys.ensure`` makes one)."""
        try:
            stat = os.stat(self.keys.keyset_file)
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        current = self._current
        if stamp != self._stamp or current is None or current.entry.valid_at(now) is not None:
            keyset = self.keys.keyset()
            valid = [k for k in keyset.keys if k.valid_at(now) is None and self.keys.private_file(k.kid).exists()]
            if not valid:
                return None
            entry = max(valid, key=lambda k: k.not_before)
            if current is None or current.entry != entry:
                current = _SigningKey(entry, _load_private(self.keys.private_file(entry.kid)))
                log.info("relay %s: signing with key %s", self.topic, entry.kid)
            self._current, self._stamp = current, stamp
        assert current is not None
        return current

    def seal(self, envelopes: Sequence[dict[str, Any]], macs: Sequence[str | None]) -> list[list[tuple[str, bytes]]]:
        """The seal headers of each envelope (empty for an event whose record MAC is missing or wrong)."""
        headers: list[list[tuple[str, bytes]]] = [[] for _ in envelopes]
        sealed: list[int] = []
        for index, (envelope, mac) in enumerate(zip(envelopes, macs, strict=True)):
            if mac is not None and hmac.compare_digest(mac, record_mac(self.record_key, envelope["hash"])):
                sealed.append(index)
            else:
                self.stats.unsealed += 1
                self.stats.unsealed_event_ids.append(envelope["event_id"])
                del self.stats.unsealed_event_ids[:-100]
                log.error(
                    "relay %s: event %s has %s record MAC; published without a seal, consumers will refuse it",
                    self.topic, envelope["event_id"], "no" if mac is None else "a wrong",
                )
        if not sealed:
            return headers
        root, paths = all_inclusion_paths([leaf_hash(bytes.fromhex(envelopes[i]["hash"])) for i in sealed])
        latest = max(envelopes[i]["recorded_at"] for i in sealed)
        seal = self._sign(root, len(sealed), latest)
        for leaf, (index, path) in enumerate(zip(sealed, paths, strict=True)):
            headers[index] = [(SEAL_HEADER, seal), (PROOF_HEADER, proof_header(leaf, path))]
        self.stats.sealed += len(sealed)
        self.stats.batches += 1
        return headers


    def _sign(self, root: bytes, size: int, latest_recorded_at: str) -> bytes:
        for _attempt in range(2):
            with self.keys.shared():
                # Never before the events' own recorded_at, should this clock be behind the writer's.
                sealed_at = max(_now(), latest_recorded_at)
                signing = self._signing_key(sealed_at)
                if signing is not None:
                    statement = seal_statement(
                        kid=signing.entry.kid, producer=self.service, topic=self.topic, root=root, size=size,
                        sealed_at=sealed_at,
                    )
                    return seal_header(statement, signing.private.sign(statement_bytes(statement)))
            self.keys.ensure()  # no key valid now (first start, or the key set was lost): make one
        raise ValueError(f"relay {self.topic}: no signing key of {self.service} is valid now")


# -- construction from the settings ----------------------------------------------------------------


def service_keys(settings: Settings, service: str, topics: Sequence[str]) -> ServiceKeys:
    return ServiceKeys(settings.signing_dir(), service, topics)


def build_sealer(settings: Settings, service: str, topic_name: str) -> Sealer:
    """The relay's sealer for ``service`` publishing on ``topic_name`` (logical); keys made when missing."""
    keys = service_keys(settings, service, [topic_name])
    keys.ensure()
    record_key = ensure_record_key(settings.signing_dir(service) / "record.key")
    return Sealer(service=service, topic=topic_name, record_key=record_key, keys=keys)


def build_provenance_check(settings: Settings, owners: dict[str, str] | None = None) -> ProvenanceCheck:
    """A consumer's check against ``IDO_TRUSTED_KEYSET_FILE`` (re-read when it changes)."""
    if not settings.trusted_keyset_file.exists():
        log.warning(
            "trusted key set %s does not exist (yet): every sealed message is refused until it does",
            settings.trusted_keyset_file,
        )
    return ProvenanceCheck(keyset_file=settings.trusted_keyset_file, topic_prefix=settings.topic_prefix, owners=owners)


def seal_envelopes(
    settings: Settings,
    topic: str,
    envelopes: Sequence[dict[str, Any]],
    *,
    service: str | None = None,
    batch_size: int = 500,
) -> list[list[tuple[str, bytes]]]:
    """The seal headers the relay of ``topic``'s owner (logical name; ``service`` for a topic not in
    ``contracts.topics``) would give ``envelopes``, in relay-sized batches, signed with the service's
    current key (made when missing). Only for tests and benchmarks that put genuine recorded
    envelopes on a topic themselves: the one place they get their seals from."""
    from contracts.provenance import OWNERS

    owner = service or OWNERS[topic]
    sealer = build_sealer(settings, owner, topic)
    headers: list[list[tuple[str, bytes]]] = []
    for start in range(0, len(envelopes), batch_size):
        batch = envelopes[start : start + batch_size]
        headers.extend(sealer.seal(batch, [record_mac(sealer.record_key, e["hash"]) for e in batch]))
    return headers
