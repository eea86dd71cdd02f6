"""All settings, read and validated in one place; an error names the setting at fault."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from contracts.identifiers import CBS_CODE, FIRST_YEAR, LAST_YEAR, ORG_ID, ORG_ID_REASON, year_from_text
from services.common.definition import service_definition
from services.common.year_settings import (
    DEFAULT_SETTLEMENT_RULES,
    SETTLEMENT_RULES,
    SISA_INDICATORS,
    YearSettingError,
    per_year,
    settlement_rule,
    sisa_codes,
)

KAFKA_SECURITY_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


VIEW_DB_URL = "IDO_VIEW_DB_URL"
EVENTS_DB_URL = "IDO_EVENTS_DB_URL"
"""Not a setting: how ``eventsourcing_env`` hands an application the SQLAlchemy URL of its event store's
database (the ledger's recorded event ids are written there in the save's transaction)."""
YEARS_OPEN_BEFORE_AWARD = "IDO_YEARS_OPEN_BEFORE_AWARD"
MERGERS_REREAD_MS = "IDO_MERGERS_REREAD_MS"
GUARDED_RECORDERS = "services.common.adapters.guarded_recorders"
WRITER_TURN_NAME = "IDO_WRITER_TURN_NAME"
"""Not a setting: the file (plus ``.writer-lock``) on which a PostgreSQL store's writers of this host take
turns before they pick a group commit's batch (services/common/group_commit.py); SQLite's sits beside it."""
"""The event stores' recorders, which check a save's guards in its transaction (stream_guard.py)."""


@dataclass(frozen=True)
class TopicReplication:
    """How the topics are replicated when they are created (`ido kafka provision`): ``factor`` copies of
    each partition (``IDO_KAFKA_REPLICATION_FACTOR``), and an acks=all write is acknowledged only once
    ``min_insync`` of them hold it (``IDO_KAFKA_MIN_INSYNC_REPLICAS``, the topic's min.insync.replicas),
    else it fails. 1/1 for the single local node; 3/2 on a cluster (docs/operations.md)."""

    factor: int = 1
    min_insync: int = 1


REPLICATION_FACTOR = "IDO_KAFKA_REPLICATION_FACTOR"
MIN_INSYNC_REPLICAS = "IDO_KAFKA_MIN_INSYNC_REPLICAS"


class SettingError(ValueError):
    def __init__(self, name: str, reason: str):
        super().__init__(f"setting {name}: {reason}")
        self.name = name


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    dbname: str
    user: str
    password: str

    @property
    def sqlalchemy_url(self) -> str:
        # Escaped: a password with @ : / % # ? would otherwise split the URL in the wrong place.
        user, password, dbname = (quote(part, safe="") for part in (self.user, self.password, self.dbname))
        return f"postgresql+psycopg://{user}:{password}@{self.host}:{self.port}/{dbname}"


GIVING360_PREFIX = re.compile(r"^360G-[A-Za-z0-9][A-Za-z0-9_.]*(?:-[A-Za-z0-9_.]+)*$")
"""A registered 360Giving prefix, as 360Giving writes them (``360G-xyztrust``): the export adds ``-<id>``."""


@dataclass(frozen=True)
class Giving360Settings:
    """The identifiers of the 360Giving export (docs/audit.md#exports). ``None`` means not configured:
    the export then writes a marked placeholder and says so, it never invents a real-looking one."""

    id_prefix: str | None = None
    """``IDO_360G_PREFIX``: the publisher's prefix registered with 360Giving."""
    funder_id: str | None = None
    """``IDO_360G_FUNDER_ID``: BZK's organisation identifier (org-id.guide, e.g. ``NL-OIN-...``)."""
    bridge_funder_id: str | None = None
    """``IDO_360G_KB_ID``: the KB's organisation identifier, funder of record of the bridging grants."""
    municipality_ids_file: Path | None = None
    """``IDO_360G_MUNICIPALITY_IDS_FILE``: CSV ``municipality_code,organisation_id``."""

    def municipality_ids(self) -> dict[str, str]:
        """The file's CBS code -> organisation id; read when an export needs it, not at start-up, so a
        broken file stops the export (naming the setting and line), never a service."""
        if self.municipality_ids_file is None:
            return {}
        return read_municipality_ids(self.municipality_ids_file)


@dataclass(frozen=True)
class Settings:
    event_store: str
    data_dir: Path
    postgres: PostgresSettings | None
    kafka_bootstrap_servers: str
    kafka_security_protocol: str
    """PLAINTEXT (a broker without authentication), SASL_PLAINTEXT or SASL_SSL."""
    kafka_sasl_mechanism: str
    kafka_credentials_dir: Path
    """One ``<principal>.password`` file per Kafka principal (services/common/kafka_credentials.py)."""
    kafka_ssl_cafile: Path | None
    topic_prefix: str
    bind_host: str
    jwt_public_key_file: Path
    jwt_private_key_file: Path
    revoked_tokens_file: Path
    """Revoked token ids; a service refuses every token (503) while it is missing or unreadable."""
    view_db_url: str
    relay_poll_interval_ms: int
    relay_batch_size: int
    read_your_writes_timeout_ms: int
    max_body_bytes: int
    ready_max_relay_lag: int
    ready_timeout_ms: int
    outbox_stall_s: int
    """Writes answer 503 once the relay has published nothing this long while events wait (0: never;
    services/common/outbox_gate.py)."""
    answer_after_published_ms: int
    """0 (off): a write is answered once stored. Otherwise a write that recorded events is answered only once
    its service's relay had the broker acknowledge them, waiting up to this long; past it, or with the store
    unreachable, 503 with Retry-After (the events are stored; a retry with the same Idempotency-Key, or a
    read, finds them). A lost store then loses no event answered 2xx, but every write waits for the relay and a
    broker outage refuses writes at once, not after ``outbox_stall_s`` (docs/decisions.md, "Disaster recovery
    from the log")."""
    log_format: str
    log_level: str
    checkpoint_dir: Path
    checkpoint_key_file: Path
    checkpoint_public_key_file: Path
    keys_dir: Path = Path("var/keys")
    token_max_lifetime_s: int = 12 * 3600
    """``IDO_TOKEN_MAX_LIFETIME_S``: the longest a token may live (exp - iat), at issue and at verification."""
    trusted_proxies: int = 0
    """``IDO_TRUSTED_PROXIES``: reverse proxies in front of the services whose X-Forwarded-For/-Proto/-Host
    are believed (0: none; 1: one proxy, e.g. TLS ending at nginx, so the dashboard cookie is Secure)."""
    trusted_keyset_file: Path = Path("var/keys/signing/keyset.json")
    """The public key set consumers (projector, audit) trust for seals (docs/audit.md#provenance)."""
    provenance: bool = True
    """Off only for benchmarks: the service's server then stores events without their record MAC."""
    sisa_indicators: Mapping[int, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    """``IDO_SISA_INDICATORS``: per grant year the SiSa codes of besteding, cumulatief, eindverantwoording."""
    settlement_rules: Mapping[int, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType(per_year(DEFAULT_SETTLEMENT_RULES, settlement_rule))
    )
    """``IDO_SETTLEMENT_RULES``: per grant year the cap of a settlement and its reclaim (year_settings.py)."""
    giving360: Giving360Settings = Giving360Settings()
    years_open_before_award: frozenset[int] = frozenset()
    """Grant years the ledger takes postings for before any award of the year is known
    (``IDO_YEARS_OPEN_BEFORE_AWARD``, e.g. ``2026,2027``); every other year needs the award first."""
    mergers_reread_ms: int = 1000
    """``IDO_MERGERS_REREAD_MS``: how stale the ledger's write side may know the mergers: a known merger is
    final and kept, the others are read again from the view at most this often (0: at every posting).
    A posting taken in between under a merged code is moved to the successor by the projection anyway
    (docs/decisions.md, "Mergers and grant years")."""
    read_your_writes_max_waiters: int = 2
    """``IDO_READ_YOUR_WRITES_MAX_WAITERS``: reads of one server process that may wait for their event
    at once (each holds a thread: keep it below ``ido serve --threads``, 4 by default); one more gets 503."""
    read_your_writes_unanswered_per_minute: int = 120
    """``IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE``: reads with ``?includes_event_id=`` one principal may
    make in any 60 s to one ledger process that name an event the ledger cannot answer for (503); past
    it, 429 with Retry-After (services/ledger/application/service.py)."""
    kafka_topic_replication: TopicReplication = TopicReplication()
    """``IDO_KAFKA_REPLICATION_FACTOR`` and ``IDO_KAFKA_MIN_INSYNC_REPLICAS`` (``TopicReplication``)."""
    write_rate_limit_per_minute: int = 600
    """``IDO_WRITE_RATE_LIMIT_PER_MINUTE``: writes (POST, PUT, PATCH, DELETE) one principal may make to
    one server process in any 60 seconds; more get 429 with Retry-After (services/common/rate_limit.py)."""

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def port(self, service: str) -> int:
        return int(os.environ.get(f"IDO_{service.upper()}_PORT", service_definition(service).http_port))

    def signing_dir(self, service: str | None = None) -> Path:
        """``<IDO_KEYS_DIR>/signing`` (the published key set), or a service's own key directory in it."""
        base = self.keys_dir / "signing"
        return base / service if service else base

    def eventsourcing_env(self, service: str) -> dict[str, str]:
        """The environment of a service's eventsourcing Application (its event store).

        Its mapper strips the writer MAC when events are read back; with provenance on, it adds
        the MAC (key ``IDO_RECORD_KEY_FILE``) to every chained event it stores."""
        provenance = {"MAPPER_TOPIC": "services.common.signing:RecordMacMapper"}
        if self.provenance:
            provenance["IDO_RECORD_KEY_FILE"] = str(self.signing_dir(service) / "record.key")
        # The ledger's write side asks the view which grant years have an award and which municipalities
        # merged (docs/decisions.md, "Mergers and grant years"); harmless for an application that does not.
        provenance[VIEW_DB_URL] = self.view_db_url
        # The ledger notes its recorded event ids there, for read-your-writes (read_side/sql/recorded.py).
        provenance[EVENTS_DB_URL] = self.events_db_url(service)
        provenance[YEARS_OPEN_BEFORE_AWARD] = ",".join(str(y) for y in sorted(self.years_open_before_award))
        provenance[MERGERS_REREAD_MS] = str(self.mergers_reread_ms)
        if self.event_store == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "APPLICATION_RECORDER_TOPIC": f"{GUARDED_RECORDERS}:GuardedSQLiteApplicationRecorder",
                "SQLITE_DBNAME": str(self.data_dir / f"{service}-events.sqlite"),
                "SQLITE_LOCK_TIMEOUT": "10",
                **provenance,
            }
        assert self.postgres is not None
        return {
            **provenance,
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": f"{GUARDED_RECORDERS}:GuardedPostgresApplicationRecorder",
            "POSTGRES_HOST": self.postgres.host,
            "POSTGRES_PORT": str(self.postgres.port),
            "POSTGRES_DBNAME": self.postgres.dbname,
            "POSTGRES_USER": self.postgres.user,
            "POSTGRES_PASSWORD": self.postgres.password,
            "POSTGRES_POOL_SIZE": "10",
            "POSTGRES_MAX_OVERFLOW": "20",
            "POSTGRES_CONNECT_TIMEOUT": "1",
            # Off on purpose: the DB functions bypass the insert lock that keeps ids gap-safe.
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            WRITER_TURN_NAME: str(self.data_dir / f"{service}-events-postgres"),
        }

    def events_db_url(self, service: str) -> str:
        """SQLAlchemy URL of the database of a service's event store (``eventsourcing_env``)."""
        if self.event_store == "sqlite":
            return f"sqlite:///{self.data_dir / f'{service}-events.sqlite'}"
        assert self.postgres is not None
        return self.postgres.sqlalchemy_url

    def service_db_url(self, service: str) -> str:
        """SQLAlchemy URL of a service's own side tables (idempotency keys, views)."""
        if self.event_store == "sqlite":
            return f"sqlite:///{self.data_dir / f'{service}-state.sqlite'}"
        assert self.postgres is not None
        return self.postgres.sqlalchemy_url


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    # int() also takes other scripts' digits ("١٢") and "1_000": a setting is plain ASCII digits
    if not re.fullmatch(r"-?[0-9]+", raw):
        raise SettingError(name, f"must be a whole number, got {raw!r}")
    value = int(raw)
    if value < minimum:
        raise SettingError(name, f"must be at least {minimum}, got {value}")
    return value


def parse_years(name: str, raw: str | None) -> frozenset[int]:
    """A comma-separated list of grant years (``2026,2027``); empty or unset is none."""
    years: set[int] = set()
    for part in (raw or "").split(","):
        part = part.strip()
        if not part:
            continue
        year = year_from_text(part)
        if year is None:
            raise SettingError(name, f"must be grant years {FIRST_YEAR}-{LAST_YEAR} separated by commas, got {part!r}")
        years.add(year)
    return frozenset(years)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name) or default
    value = raw.upper() if choices[0].isupper() else raw.lower()
    if value not in choices:
        raise SettingError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _per_year_setting(env: Mapping[str, str], name: str, default: str, parse: Any) -> Mapping[int, Any]:
    try:
        return MappingProxyType(per_year(env.get(name) or default, parse))
    except YearSettingError as error:
        raise SettingError(name, str(error)) from None

MUNICIPALITY_IDS = "IDO_360G_MUNICIPALITY_IDS_FILE"


def read_municipality_ids(path: Path) -> dict[str, str]:
    """``municipality_code,organisation_id`` with that header, one municipality a line."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as error:
        raise SettingError(MUNICIPALITY_IDS, f"cannot read {path}: {error.strerror}") from None
    rows = list(csv.reader(lines))
    if not rows or [c.strip() for c in rows[0]] != ["municipality_code", "organisation_id"]:
        raise SettingError(MUNICIPALITY_IDS, f"{path}: the first line must be municipality_code,organisation_id")
    ids: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise SettingError(MUNICIPALITY_IDS, f"{path} line {number}: two columns expected, got {len(row)}")
        code, org_id = (cell.strip() for cell in row)
        if not CBS_CODE.fullmatch(code):
            raise SettingError(MUNICIPALITY_IDS, f"{path} line {number}: {code!r} is not a CBS code (GM and 4 digits)")
        if not ORG_ID.fullmatch(org_id):
            raise SettingError(MUNICIPALITY_IDS, f"{path} line {number}: {org_id!r} {ORG_ID_REASON}")
        if code in ids:
            raise SettingError(MUNICIPALITY_IDS, f"{path} line {number}: {code} is listed twice")
        ids[code] = org_id
    return ids


def _org_id(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not ORG_ID.fullmatch(raw):
        raise SettingError(name, f"{ORG_ID_REASON} (org-id.guide), got {raw!r}")
    return raw


def _giving360(env: Mapping[str, str]) -> Giving360Settings:
    prefix = env.get("IDO_360G_PREFIX") or None
    if prefix is not None and not GIVING360_PREFIX.fullmatch(prefix):
        raise SettingError(
            "IDO_360G_PREFIX", f"must be the prefix registered with 360Giving, such as 360G-xyztrust "
            f"(no trailing hyphen, no spaces or slashes), got {prefix!r}"
        )
    ids_file = env.get(MUNICIPALITY_IDS) or None
    if ids_file is not None and not Path(ids_file).is_file():
        raise SettingError(MUNICIPALITY_IDS, f"no such file: {ids_file}")
    return Giving360Settings(
        id_prefix=prefix,
        funder_id=_org_id(env, "IDO_360G_FUNDER_ID"),
        bridge_funder_id=_org_id(env, "IDO_360G_KB_ID"),
        municipality_ids_file=Path(ids_file) if ids_file else None,
    )


def _topic_replication(env: Mapping[str, str]) -> TopicReplication:
    factor = _int(env, REPLICATION_FACTOR, 1, minimum=1)
    min_insync = _int(env, MIN_INSYNC_REPLICAS, 1, minimum=1)
    # Kafka takes a larger value but then refuses every acks=all write: say so at start-up instead.
    if min_insync > factor:
        raise SettingError(
            MIN_INSYNC_REPLICAS, f"must be at most {REPLICATION_FACTOR} ({factor}), got {min_insync}: "
            "no acks=all write could ever be acknowledged"
        )
    return TopicReplication(factor=factor, min_insync=min_insync)


def _postgres_password(env: Mapping[str, str]) -> str:
    """``POSTGRES_PASSWORD_FILE`` (a compose or Kubernetes secret; trailing newline dropped) or
    ``POSTGRES_PASSWORD``; not both, so no stale variable silently wins."""
    path = env.get("POSTGRES_PASSWORD_FILE") or None
    if path is None:
        return env.get("POSTGRES_PASSWORD", "")
    if env.get("POSTGRES_PASSWORD"):
        raise SettingError("POSTGRES_PASSWORD_FILE", "set it or POSTGRES_PASSWORD, not both")
    try:
        password = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingError("POSTGRES_PASSWORD_FILE", f"cannot read {path}: {error}") from None
    if not password:
        raise SettingError("POSTGRES_PASSWORD_FILE", f"{path} is empty")
    return password


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    event_store = env.get("IDO_EVENT_STORE", "sqlite")
    if event_store not in ("sqlite", "postgres"):
        raise SettingError("IDO_EVENT_STORE", f"must be 'sqlite' or 'postgres', got {event_store!r}")
    data_dir = Path(env.get("IDO_DATA_DIR", "var/data"))
    postgres = None
    if event_store == "postgres":
        for name in ("POSTGRES_HOST", "POSTGRES_DBNAME", "POSTGRES_USER"):
            if not env.get(name):
                raise SettingError(name, "is required when IDO_EVENT_STORE=postgres")
        postgres = PostgresSettings(
            host=env["POSTGRES_HOST"],
            port=_int(env, "POSTGRES_PORT", 5432, minimum=1),
            dbname=env["POSTGRES_DBNAME"],
            user=env["POSTGRES_USER"],
            password=_postgres_password(env),
        )
    keys_dir = Path(env.get("IDO_KEYS_DIR", "var/keys"))
    view_db_url = env.get(VIEW_DB_URL) or (
        postgres.sqlalchemy_url if postgres else f"sqlite:///{data_dir / 'ledger-view.sqlite'}"
    )
    kafka_ssl_cafile = env.get("KAFKA_SSL_CAFILE") or None
    if kafka_ssl_cafile is not None and not Path(kafka_ssl_cafile).is_file():
        raise SettingError("KAFKA_SSL_CAFILE", f"no such file: {kafka_ssl_cafile}")
    bind_host = env.get("IDO_BIND_HOST", "127.0.0.1")
    if not bind_host:
        raise SettingError("IDO_BIND_HOST", "must not be empty")
    return Settings(
        event_store=event_store,
        data_dir=data_dir,
        postgres=postgres,
        kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        kafka_security_protocol=_choice(env, "KAFKA_SECURITY_PROTOCOL", KAFKA_SECURITY_PROTOCOLS, "SASL_PLAINTEXT"),
        kafka_sasl_mechanism=_choice(env, "KAFKA_SASL_MECHANISM", KAFKA_SASL_MECHANISMS, "SCRAM-SHA-512"),
        kafka_credentials_dir=Path(env.get("IDO_KAFKA_CREDENTIALS_DIR") or str(keys_dir / "kafka")),
        kafka_ssl_cafile=Path(kafka_ssl_cafile) if kafka_ssl_cafile else None,
        topic_prefix=env.get("IDO_TOPIC_PREFIX", ""),
        bind_host=bind_host,
        jwt_public_key_file=Path(env.get("IDO_JWT_PUBLIC_KEY_FILE", str(keys_dir / "jwt_public.pem"))),
        jwt_private_key_file=Path(env.get("IDO_JWT_PRIVATE_KEY_FILE", str(keys_dir / "jwt_private.pem"))),
        revoked_tokens_file=Path(env.get("IDO_REVOKED_TOKENS_FILE", str(keys_dir / "revoked_tokens.txt"))),
        view_db_url=view_db_url,
        relay_poll_interval_ms=_int(env, "IDO_RELAY_POLL_INTERVAL_MS", 50, minimum=1),
        relay_batch_size=_int(env, "IDO_RELAY_BATCH_SIZE", 500, minimum=1),
        read_your_writes_timeout_ms=_int(env, "IDO_READ_YOUR_WRITES_TIMEOUT_MS", 5000, minimum=0),
        max_body_bytes=_int(env, "IDO_MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        ready_max_relay_lag=_int(env, "IDO_READY_MAX_RELAY_LAG", 1000, minimum=0),
        ready_timeout_ms=_int(env, "IDO_READY_TIMEOUT_MS", 2000, minimum=100),
        outbox_stall_s=_int(env, "IDO_OUTBOX_STALL_S", 15, minimum=0),
        answer_after_published_ms=_int(env, "IDO_ANSWER_AFTER_PUBLISHED_MS", 0, minimum=0),
        log_format=_choice(env, "IDO_LOG_FORMAT", ("json", "text"), "json"),
        log_level=_choice(env, "IDO_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        checkpoint_dir=Path(env.get("IDO_CHECKPOINT_DIR") or str(data_dir / "checkpoints")),
        checkpoint_key_file=Path(env.get("IDO_CHECKPOINT_KEY_FILE") or str(keys_dir / "checkpoint_private.pem")),
        checkpoint_public_key_file=Path(
            env.get("IDO_CHECKPOINT_PUBLIC_KEY_FILE") or str(keys_dir / "checkpoint_public.pem")
        ),
        keys_dir=keys_dir,
        token_max_lifetime_s=_int(env, "IDO_TOKEN_MAX_LIFETIME_S", 12 * 3600, minimum=60),
        trusted_proxies=_int(env, "IDO_TRUSTED_PROXIES", 0, minimum=0),
        trusted_keyset_file=Path(env.get("IDO_TRUSTED_KEYSET_FILE") or str(keys_dir / "signing" / "keyset.json")),
        provenance=_choice(env, "IDO_PROVENANCE", ("on", "off"), "on") == "on",
        sisa_indicators=_per_year_setting(env, SISA_INDICATORS, "", sisa_codes),
        settlement_rules=_per_year_setting(env, SETTLEMENT_RULES, DEFAULT_SETTLEMENT_RULES, settlement_rule),
        giving360=_giving360(env),
        years_open_before_award=parse_years(YEARS_OPEN_BEFORE_AWARD, env.get(YEARS_OPEN_BEFORE_AWARD)),
        mergers_reread_ms=_int(env, MERGERS_REREAD_MS, 1000, minimum=0),
        read_your_writes_max_waiters=_int(env, "IDO_READ_YOUR_WRITES_MAX_WAITERS", 2, minimum=1),
        read_your_writes_unanswered_per_minute=_int(
            env, "IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE", 120, minimum=1
        ),
        write_rate_limit_per_minute=_int(env, "IDO_WRITE_RATE_LIMIT_PER_MINUTE", 600, minimum=1),
        kafka_topic_replication=_topic_replication(env),
    )
