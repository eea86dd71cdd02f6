"""Provenance: was a message sealed by the service that owns its topic, and does the seal cover it?

Every message a service's relay publishes carries, in its Kafka headers (never in the value, so the
value and its ``hash`` stay byte for byte what was recorded):

- ``ido-seal``: the canonical JSON (sorted keys, no spaces, UTF-8) of the seal of the relay's batch,
  ``{"kid", "producer", "topic", "root", "size", "sealed_at", "signature"}``. ``signature`` is the
  Ed25519 signature (base64url, no padding) over the canonical JSON of the other six fields, the
  *statement*: key id, producing service, logical topic name (without any deployment prefix),
  ``root`` (hex) of the RFC 9162 Merkle tree over the batch's event hashes, its ``size``, and
  ``sealed_at`` (UTC, the envelope's timestamp format). Every message of a batch carries the same
  bytes, so a consumer verifies one signature per batch.
- ``ido-seal-proof``: ``<leaf index>:<audit path>`` in ASCII; the path is the base64url (no padding)
  of the concatenated 32-byte sibling hashes, leaf to root (RFC 9162 PATH). The leaf is the 32
  bytes of the envelope's ``hash``.

``ProvenanceCheck.check(topic, envelope, headers)`` accepts a message only when its seal is signed
by a key of the trusted key set that belongs to the topic's owning service and was valid at
``sealed_at``, the seal is for this topic and producer, the event's hash folds to the seal's root,
and the event was recorded no later than it was sealed. Otherwise it raises ``ContractViolation``
with a reason starting ``provenance:``. Call it after ``parse_message`` (which checks the hash).

The key set (JSON): ``{"keys": [{"kid", "service", "alg": "Ed25519", "public_key" (base64url of the
32 raw bytes), "topics": [logical names], "not_before", "not_after" (or null)}]}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.canonical import canonical_json
from contracts.envelope import ContractViolation
from contracts.identifiers import SHA256_HEX_PATTERN, UTC_TIMESTAMP_PATTERN
from contracts.topics import PUBLISHED_TOPICS

SEAL_HEADER = "ido-seal"
PROOF_HEADER = "ido-seal-proof"
ALGORITHM = "Ed25519"
STATEMENT_FIELDS = ("kid", "producer", "topic", "root", "size", "sealed_at")
UTC_TIMESTAMP = re.compile(UTC_TIMESTAMP_PATTERN)
HEX64 = re.compile(SHA256_HEX_PATTERN)
KID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")

OWNERS: dict[str, str] = {spec.name: spec.producer for spec in PUBLISHED_TOPICS}
"""Logical topic -> the one service whose key may seal messages on it."""


def b64url(data: bytes) -> str:
    return _b64url_bytes(data).decode("ascii")


def _b64url_bytes(data: bytes) -> bytes:
    """base64url without padding, the one spelling of every binary value in a seal or a proof."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def unb64url(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(service: str, raw_public_key: bytes) -> str:
    """``<service>-`` and the first 16 hex digits of the SHA-256 of the raw public key."""
    return f"{service}-{hashlib.sha256(raw_public_key).hexdigest()[:16]}"


# -- key sets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    kid: str
    service: str
    raw: bytes
    topics: tuple[str, ...]
    not_before: str
    not_after: str | None
    key: Ed25519PublicKey

    def valid_at(self, moment: str) -> str | None:
        """None when the key may sign at ``moment`` (a UTC timestamp string); else why not."""
        if moment < self.not_before:
            return f"not yet valid at {moment} (valid from {self.not_before})"
        if self.not_after is not None and moment > self.not_after:
            return f"retired at {self.not_after}, seal made at {moment}"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kid": self.kid, "service": self.service, "alg": ALGORITHM, "public_key": b64url(self.raw),
            "topics": list(self.topics), "not_before": self.not_before, "not_after": self.not_after,
        }


def public_key_entry(document: Any) -> PublicKey:
    """One key of a key set; raises ValueError naming what is wrong."""
    if not isinstance(document, dict):
        raise ValueError("a key must be a JSON object")
    kid = document.get("kid")
    if not isinstance(kid, str) or not KID.fullmatch(kid):
        raise ValueError(f"kid: {kid!r} is not a key id")
    if document.get("alg") != ALGORITHM:
        raise ValueError(f"{kid}: alg must be {ALGORITHM}")
    service = document.get("service")
    if not isinstance(service, str) or not service:
        raise ValueError(f"{kid}: service missing")
    try:
        raw = unb64url(str(document.get("public_key", "")))
        key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error) as error:
        raise ValueError(f"{kid}: public_key is not a base64url Ed25519 key ({error})") from None
    if kid != key_id(service, raw):
        raise ValueError(f"{kid}: the key id does not derive from the public key and service ({key_id(service, raw)})")
    topics = document.get("topics")
    if not isinstance(topics, list) or not all(isinstance(t, str) and t for t in topics):
        raise ValueError(f"{kid}: topics must be a list of topic names")
    not_before = document.get("not_before")
    not_after = document.get("not_after")
    if not isinstance(not_before, str) or not UTC_TIMESTAMP.fullmatch(not_before):
        raise ValueError(f"{kid}: not_before must be a UTC timestamp like 2024-01-31T09:00:00.000000Z")
    if not_after is not None and (not isinstance(not_after, str) or not UTC_TIMESTAMP.fullmatch(not_after)):
        raise ValueError(f"{kid}: not_after must be null or a UTC timestamp")
    return PublicKey(kid, service, raw, tuple(topics), not_before, not_after, key)


@dataclass(frozen=True)
class KeySet:
    keys: tuple[PublicKey, ...] = ()

    @classmethod
    def from_document(cls, document: Any) -> KeySet:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError('a key set is a JSON object {"keys": [...]}')
        keys = tuple(public_key_entry(entry) for entry in document["keys"])
        kids = [k.kid for k in keys]
        if len(set(kids)) != len(kids):
            raise ValueError("a key id appears twice")
        return cls(keys)

    @classmethod
    def load(cls, path: Path) -> KeySet:
        """The key set in ``path``; an empty one when the file does not exist."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        try:
            return cls.from_document(json.loads(text))
        except (json.JSONDecodeError, ValueError) as error:
            raise ValueError(f"key set {path}: {error}") from None

    def get(self, kid: str) -> PublicKey | None:
        return next((k for k in self.keys if k.kid == kid), None)

    def document(self) -> dict[str, Any]:
        return {"keys": [k.as_dict() for k in sorted(self.keys, key=lambda k: (k.service, k.not_before, k.kid))]}

    def merged(self, other: Iterable[PublicKey]) -> KeySet:
        """This set with ``other``'s keys added or (same kid) replaced."""
        by_kid = {k.kid: k for k in self.keys}
        for key in other:
            by_kid[key.kid] = key
        return KeySet(tuple(by_kid.values()))


# -- seals ---------------------------------------------------------------------------------------


def seal_statement(*, kid: str, producer: str, topic: str, root: bytes, size: int, sealed_at: str) -> dict[str, Any]:
    return {"kid": kid, "producer": producer, "topic": topic, "root": root.hex(), "size": size, "sealed_at": sealed_at}


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """What the signature signs: the canonical JSON of the statement."""
    return canonical_json({name: statement[name] for name in STATEMENT_FIELDS})


def seal_header(statement: Mapping[str, Any], signature: bytes) -> bytes:
    return canonical_json({**{name: statement[name] for name in STATEMENT_FIELDS}, "signature": b64url(signature)})


def proof_header(index: int, path: bytes) -> bytes:
    """A message's proof: its leaf index and its path, the sibling hashes joined (``all_inclusion_paths``)."""
    return b"%d:%s" % (index, _b64url_bytes(path))


@dataclass(frozen=True)
class _Seal:
    key: PublicKey
    producer: str
    topic: str
    root: bytes
    size: int
    sealed_at: str


def _siblings(path_text: bytes, count: int) -> bytes:
    """The first ``count`` 32-byte siblings of a base64url path (or fewer when it is shorter).

    Lenient (``a2b_base64`` skips stray characters): a path that is not what the relay wrote cannot
    fold to the signed root anyway. Only the prefix a fold needs is decoded: most folds stop after
    one or two steps at a node already proven."""
    chunk = path_text[: -(-32 * count // 3) * 4]
    return _a2b_base64(chunk.translate(_FROM_URLSAFE) + b"=" * (-len(chunk) % 4))[: 32 * count]


def _covered(seal: _Seal, nodes: dict[int, bytes], leaf: bytes, index: int, path_text: bytes) -> bool:
    """Does the path (``path_text``: base64url, no padding) fold ``leaf`` at ``index`` to the seal's
    root (RFC 9162 inclusion)?

    ``nodes`` holds the seal's tree nodes proven so far, by (level, position) of the tree built
    bottom-up (a last node without a partner is carried up: RFC 9162's shape). A fold stops at the
    first node already proven, so a batch's leaves cost about two hashes each instead of log2(size).
    """
    size = seal.size
    if not 0 <= index < size:
        return False
    length = len(path_text)
    if length % 4 == 1 or (length * 3 // 4) % 32:
        return False
    steps = length * 3 // 4 // 32
    path = b""
    node, position, width, level, used = leaf, index, size, 0, 0
    proven: list[tuple[int, bytes]] = []
    while width > 1:
        key = (level << 40) | position
        known = nodes.get(key)
        if known is not None:
            if known != node:
                return False
            break
        proven.append((key, node))
        sibling = position ^ 1
        if sibling < width:
            if used == steps:
                return False
            if len(path) < 32 * used + 32:
                path = _siblings(path_text, steps if used else min(2, steps))
                if len(path) < 32 * used + 32:
                    return False
            other = path[32 * used : 32 * used + 32]
            used += 1
            proven.append(((level << 40) | sibling, other))
            node = _sha256(b"\x01" + other + node if position & 1 else b"\x01" + node + other).digest()
        position >>= 1
        width = (width + 1) >> 1
        level += 1
    else:
        if node != seal.root or used != steps:
            return False
    nodes.update(proven)
    return True


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_a2b_base64 = binascii.a2b_base64
_sha256 = hashlib.sha256


def _parse_seal(value: bytes) -> tuple[dict[str, Any], bytes]:
    try:
        seal = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not UTF-8 JSON") from None
    if not isinstance(seal, dict) or set(seal) != {*STATEMENT_FIELDS, "signature"}:
        raise ValueError(f"fields must be {', '.join((*STATEMENT_FIELDS, 'signature'))}")
    if not all(isinstance(seal[f], str) for f in ("kid", "producer", "topic", "root", "sealed_at", "signature")):
        raise ValueError("kid, producer, topic, root, sealed_at and signature must be strings")
    if type(seal["size"]) is not int or seal["size"] < 1:
        raise ValueError("size must be a positive whole number")
    if not HEX64.fullmatch(seal["root"]):
        raise ValueError("root must be 64 lowercase hex digits")
    if not UTC_TIMESTAMP.fullmatch(seal["sealed_at"]):
        raise ValueError("sealed_at must be a UTC timestamp")
    try:
        signature = unb64url(seal["signature"])
    except (ValueError, binascii.Error):
        raise ValueError("signature is not base64url") from None
    return seal, signature


class ProvenanceCheck:
    """A consumer's check of seals against a trusted key set.

    ``keyset_file``: the trusted key set is read from it and read again when it changed (its
    modification time, looked at no more than once a second, and at once when a seal names a key
    it does not hold), so a rotation reaches running consumers. ``keyset`` instead: a fixed set.
    ``topic_prefix``: stripped from the Kafka topic name to get the logical name the seal names.
    ``owners``: logical topic -> owning service (default: ``OWNERS``, our three topics).
    Verified seals are remembered by their bytes (``cache_size`` of them, least recently used
    dropped), so a batch of messages with one seal costs one signature check.
    """

    def __init__(
        self,
        *,
        keyset: KeySet | None = None,
        keyset_file: Path | None = None,
        topic_prefix: str = "",
        owners: Mapping[str, str] | None = None,
        cache_size: int = 4096,
    ):
        if (keyset is None) == (keyset_file is None):
            raise ValueError("give either keyset or keyset_file")
        self.keyset_file = keyset_file
        self.keyset = keyset if keyset is not None else KeySet()
        self.topic_prefix = topic_prefix
        self.owners = dict(OWNERS if owners is None else owners)
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, _Known] = OrderedDict()
        self._proving: deque[_Known] = deque(maxlen=32)
        """The seals seen last, which keep their proven tree nodes (a batch's messages come together
        per partition; a seal's nodes would take ~100 KB each if all were kept)."""
        self._stamp: tuple[int, int] | None = None
        self._looked_at = 0.0
        self.signatures_verified = 0
        if keyset_file is not None:
            self._reload(force=True)

    # -- the key set ---------------------------------------------------------------------------

    def _reload(self, *, force: bool = False) -> None:
        if self.keyset_file is None:
            return
        now = time.monotonic()
        if not force and now - self._looked_at < 1.0:
            return
        self._looked_at = now
        try:
            stat = os.stat(self.keyset_file)
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and not force:
            return
        self._stamp = stamp
        self.keyset = KeySet.load(self.keyset_file)
        self._cache.clear()
        self._proving.clear()

    def _key(self, kid: str) -> PublicKey | None:
        key = self.keyset.get(kid)
        if key is None and self.keyset_file is not None:
            self._looked_at = 0.0
            self._reload()
            key = self.keyset.get(kid)
        return key

    # -- the check -----------------------------------------------------------------------------

    def logical_topic(self, topic: str) -> str:
        if self.topic_prefix and topic.startswith(self.topic_prefix):
            return topic[len(self.topic_prefix) :]
        return topic

    def _verify_seal(self, value: bytes) -> _Seal | str:
        try:
            seal, signature = _parse_seal(value)
        except ValueError as error:
            return f"provenance: malformed {SEAL_HEADER} header ({error})"
        key = self._key(seal["kid"])
        if key is None:
            return f"provenance: unknown key {seal['kid']!r}"
        if seal["producer"] != key.service:
            return f"provenance: the seal names producer {seal['producer']!r} but key {key.kid} is {key.service!r}'s"
        invalid = key.valid_at(seal["sealed_at"])
        if invalid is not None:
            return f"provenance: key {key.kid} {invalid}"
        try:
            key.key.verify(signature, statement_bytes(seal))
        except InvalidSignature:
            return f"provenance: bad signature (key {key.kid})"
        finally:
            self.signatures_verified += 1
        return _Seal(key, seal["producer"], seal["topic"], bytes.fromhex(seal["root"]), seal["size"], seal["sealed_at"])

    def _known(self, value: bytes) -> _Known:
        self._reload()
        known = self._cache.get(value)
        if known is None:
            known = self._cache[value] = _Known(self._verify_seal(value))
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(value)
        return known

    def _accept_for(self, seal: _Seal, topic: str) -> None:
        """Raises unless ``seal`` may seal messages on Kafka topic ``topic``."""
        logical = self.logical_topic(topic)
        owner = self.owners.get(logical)
        if owner is None:
            raise ContractViolation(f"provenance: no owning service is known for topic {logical}")
        if seal.key.service != owner or logical not in seal.key.topics:
            raise ContractViolation(
                f"provenance: key {seal.key.kid} of {seal.key.service!r} does not own topic {logical} (owner {owner!r})"
            )
        if seal.topic != logical:
            raise ContractViolation(f"provenance: sealed for topic {seal.topic}, found on {logical}")

    def check(self, topic: str, envelope: Mapping[str, Any], headers: Sequence[tuple[str, bytes]] | None) -> None:
        """Raises ``ContractViolation`` unless the message is sealed by its topic's owner and covered."""
        # Every message pays for this (a replay of 10^6 of them): the work per seal is done once
        # (its signature, its owner and topic, the tree nodes proven), per message only its leaf.
        seal_value, proof_value = seal_headers(headers)
        if seal_value is None:
            raise ContractViolation(f"provenance: unsigned (no {SEAL_HEADER} header)")
        if proof_value is None:
            raise ContractViolation(f"provenance: no {PROOF_HEADER} header")
        known = self._known(seal_value if type(seal_value) is bytes else bytes(seal_value))
        seal = known.seal
        if isinstance(seal, str):
            raise ContractViolation(seal)
        if known.topic != topic:
            self._accept_for(seal, topic)
            known.topic = topic
        if envelope.get("producer") != seal.producer:
            raise ContractViolation(
                f"provenance: the event's producer {envelope.get('producer')!r} is not the seal's {seal.producer!r}"
            )
        index_text, separator, path_text = bytes(proof_value).partition(b":")
        try:
            if not separator or not index_text.isdigit():
                raise ValueError("not <leaf index>:<path>")
            index = int(index_text)
            leaf = _sha256(b"\x00" + bytes.fromhex(envelope["hash"])).digest()
        except (ValueError, KeyError, TypeError) as error:
            raise ContractViolation(f"provenance: malformed {PROOF_HEADER} header ({error})") from None
        nodes = known.nodes
        if nodes is None:
            nodes = known.nodes = {}
            if len(self._proving) == self._proving.maxlen:
                self._proving[0].nodes = None
            self._proving.append(known)
        if not _covered(seal, nodes, leaf, index, path_text):
            raise ContractViolation(
                "provenance: the event is not covered by its seal (the path does not fold to the root)"
            )
        recorded_at = envelope.get("recorded_at")
        if not isinstance(recorded_at, str) or recorded_at > seal.sealed_at:
            raise ContractViolation(f"provenance: recorded_at {recorded_at} is after sealed_at {seal.sealed_at}")


def seal_headers(headers: Iterable[tuple[str, Any]] | None) -> tuple[Any, Any]:
    """The values of a message's seal and proof headers, the last of each name (None when there is none):
    all that ``ProvenanceCheck.check`` reads of the headers."""
    seal_value = proof_value = None
    for name, value in headers or ():
        if name == SEAL_HEADER:
            seal_value = value
        elif name == PROOF_HEADER:
            proof_value = value
    return seal_value, proof_value


class _Known:
    """A seal as checked: the seal or why it was refused, the Kafka topic it was last accepted on,
    and (for the few seals seen last) the tree nodes proven so far."""

    __slots__ = ("seal", "topic", "nodes")

    def __init__(self, seal: _Seal | str):
        self.seal = seal
        self.topic: str | None = None
        self.nodes: dict[int, bytes] | None = None


# -- published descriptions (contracts/generated/, the AsyncAPI document) ---------------------------

_TIMESTAMP_SCHEMA = {"type": "string", "pattern": UTC_TIMESTAMP.pattern}
_SEAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "The seal of a relay batch. `signature` is Ed25519 over the canonical JSON (sorted keys, no spaces, UTF-8) "
        "of the other six fields."
    ),
    "required": [*STATEMENT_FIELDS, "signature"],
    "additionalProperties": False,
    "properties": {
        "kid": {"type": "string", "pattern": KID.pattern, "description": "The key id (see the key set)."},
        "producer": {"type": "string", "description": "The sealing service: the owner of the topic."},
        "topic": {"type": "string", "description": "The logical topic name (without a deployment's prefix)."},
        "root": {"type": "string", "pattern": HEX64.pattern,
                 "description": "RFC 9162 tree head over the batch's event hashes (leaf: the 32 bytes of `hash`)."},
        "size": {"type": "integer", "minimum": 1, "description": "Leaves in the tree."},
        "sealed_at": {**_TIMESTAMP_SCHEMA, "description": "UTC; never before the recorded_at of an event it covers."},
        "signature": {"type": "string", "pattern": "^[A-Za-z0-9_-]{86}$", "description": "Ed25519, base64url."},
    },
}

SEAL_HEADERS_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:ido-ledger:contracts:seal-headers:v1",
    "title": "Seal headers",
    "description": (
        "Kafka headers of every message on the published topics (the value is untouched). Check them with "
        "contracts.provenance.ProvenanceCheck and the publishing service's key set (keyset.schema.json)."
    ),
    "type": "object",
    "required": [SEAL_HEADER, PROOF_HEADER],
    "properties": {
        SEAL_HEADER: {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": _SEAL_SCHEMA,
            "description": "The batch's seal, canonical JSON; the same bytes on every message of the batch.",
        },
        PROOF_HEADER: {
            "type": "string",
            "pattern": "^(0|[1-9][0-9]*):[A-Za-z0-9_-]*$",
            "description": (
                "`<leaf index>:<audit path>`: the path is the base64url (no padding) of the concatenated 32-byte "
                "sibling hashes, leaf to root (RFC 9162 PATH)."
            ),
        },
        "event_type": {"type": "string", "description": "The envelope's event_type (informative)."},
        "event_id": {"type": "string", "description": "The envelope's event_id (informative)."},
    },
}

KEYSET_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:ido-ledger:contracts:keyset:v1",
    "title": "Key set",
    "description": (
        "Public keys the services seal their topics with. Each service serves its own at "
        "/.well-known/ido-keyset.json; `ido keys export` writes all of them."
    ),
    "type": "object",
    "required": ["keys"],
    "properties": {
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kid", "service", "alg", "public_key", "topics", "not_before", "not_after"],
                "properties": {
                    "kid": {"type": "string", "pattern": KID.pattern,
                            "description": "`<service>-` + the first 16 hex digits of SHA-256(raw public key)."},
                    "service": {"type": "string"},
                    "alg": {"const": ALGORITHM},
                    "public_key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$",
                                   "description": "The 32 raw bytes of the Ed25519 public key, base64url."},
                    "topics": {"type": "array", "items": {"type": "string"},
                               "description": "Logical topics the key seals."},
                    "not_before": {**_TIMESTAMP_SCHEMA, "description": "The key seals from this moment (UTC)."},
                    "not_after": {
                        "oneOf": [{"type": "null"}, _TIMESTAMP_SCHEMA],
                        "description": "Retired at this moment (UTC): a seal made later is refused; null: current.",
                    },
                },
            },
        }
    },
}
