"""All settings, read and validated in one place; an error names the setting at fault."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

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
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"


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
    view_db_url: str
    relay_poll_interval_ms: int
    relay_batch_size: int
    read_your_writes_timeout_ms: int
    max_body_bytes: int
    ready_max_relay_lag: int
    ready_timeout_ms: int
    log_format: str
    log_level: str
    checkpoint_dir: Path
    checkpoint_key_file: Path
    checkpoint_public_key_file: Path
    keys_dir: Path = Path("var/keys")
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
        if self.event_store == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.data_dir / f"{service}-events.sqlite"),
                "SQLITE_LOCK_TIMEOUT": "10",
                **provenance,
            }
        assert self.postgres is not None
        return {
            **provenance,
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
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
        }

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
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(name, f"must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingError(name, f"must be at least {minimum}, got {value}")
    return value


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
            password=env.get("POSTGRES_PASSWORD", ""),
        )
    keys_dir = Path(env.get("IDO_KEYS_DIR", "var/keys"))
    view_db_url = env.get("IDO_VIEW_DB_URL") or (
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
        log_format=_choice(env, "IDO_LOG_FORMAT", ("json", "text"), "json"),
        log_level=_choice(env, "IDO_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        checkpoint_dir=Path(env.get("IDO_CHECKPOINT_DIR") or str(data_dir / "checkpoints")),
        checkpoint_key_file=Path(env.get("IDO_CHECKPOINT_KEY_FILE") or str(keys_dir / "checkpoint_private.pem")),
        checkpoint_public_key_file=Path(
            env.get("IDO_CHECKPOINT_PUBLIC_KEY_FILE") or str(keys_dir / "checkpoint_public.pem")
        ),
        keys_dir=keys_dir,
        trusted_keyset_file=Path(env.get("IDO_TRUSTED_KEYSET_FILE") or str(keys_dir / "signing" / "keyset.json")),
        provenance=_choice(env, "IDO_PROVENANCE", ("on", "off"), "on") == "on",
        sisa_indicators=_per_year_setting(env, SISA_INDICATORS, "", sisa_codes),
        settlement_rules=_per_year_setting(env, SETTLEMENT_RULES, DEFAULT_SETTLEMENT_RULES, settlement_rule),
    )
