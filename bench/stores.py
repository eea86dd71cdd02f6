"""Where one row runs: a fresh SQLite data dir or a fresh PostgreSQL database, plus Kafka settings."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.data import YEAR, municipality_codes
from services.common.adapters.kafka import client_config
from services.common.auth import init_token_files, issue_token
from services.common.config import Settings, load_settings
from services.common.definition import SERVICE_NAMES
from services.common.kafka_credentials import ADMIN
from services.common.kafka_provisioning import provision


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_env(cls) -> Postgres | None:
        port = os.environ.get("BENCH_POSTGRES_PORT")
        if not port:
            return None
        return cls(
            host=os.environ.get("BENCH_POSTGRES_HOST", "127.0.0.1"),
            port=int(port),
            user=os.environ.get("BENCH_POSTGRES_USER", "ido"),
            password=os.environ.get("BENCH_POSTGRES_PASSWORD", "ido"),
        )

    def dsn(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user={self.user} password={self.password} dbname={dbname}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def server_settings(self) -> dict[str, str]:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            found = {}
            for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method"):
                row = connection.execute(f"SHOW {name}").fetchone()
                found[name] = str(row[0]) if row else "?"
            return found


@dataclass
class Bench:
    """What every row needs: the work dir, the broker, the PostgreSQL server, the run's id."""

    work_dir: Path
    kafka_bootstrap: str
    kafka_credentials_dir: str
    """The broker's password files (``make bench``: the bench broker's; the admin's is made by kafka.sh)."""
    postgres: Postgres | None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    databases: list[str] = field(default_factory=list)
    provisioned: set[str] = field(default_factory=set)

    def kafka_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "IDO_KAFKA_CREDENTIALS_DIR": self.kafka_credentials_dir,
        }

    @property
    def kafka_config(self) -> dict[str, Any]:
        """The admin's client settings: the references (bare producers and consumers) and the data sets."""
        return client_config(load_settings(self.kafka_env()), ADMIN)

    def provision(self, topic_prefix: str) -> None:
        """Users, the prefix's topics and every principal's ACLs on them, as `make run` does (once a prefix)."""
        if topic_prefix not in self.provisioned:
            provision(load_settings({**self.kafka_env(), "IDO_TOPIC_PREFIX": topic_prefix}))
            self.provisioned.add(topic_prefix)

    @property
    def keys_dir(self) -> Path:
        return self.work_dir / "keys"

    def place(self, store: str, label: str, topic_prefix: str | None = None) -> Place:
        """A fresh store for one row: its own SQLite dir, or its own PostgreSQL database."""
        env = {
            "IDO_KEYS_DIR": str(self.keys_dir),
            "IDO_DATA_DIR": str(self.work_dir / store / label / "data"),
            **self.kafka_env(),
            "IDO_TOPIC_PREFIX": topic_prefix if topic_prefix is not None else f"b{self.run_id}.{store}.{label}.",
            # the bench posts without awards: its year is opened before its award (issue 15)
            "IDO_YEARS_OPEN_BEFORE_AWARD": str(YEAR),
            # the bench measures throughput, not the per-principal write limit (issue 16)
            "IDO_WRITE_RATE_LIMIT_PER_MINUTE": "100000000",
        }
        self.provision(env["IDO_TOPIC_PREFIX"])
        if store == "sqlite":
            env["IDO_EVENT_STORE"] = "sqlite"
        elif store == "postgres":
            if self.postgres is None:
                raise RuntimeError("PostgreSQL rows need BENCH_POSTGRES_PORT (make bench starts a server)")
            name = f"bench_{self.run_id}_{label}".replace("-", "_").lower()
            self.postgres.create_database(name)
            self.databases.append(name)
            env.update(
                {
                    "IDO_EVENT_STORE": "postgres",
                    "POSTGRES_HOST": self.postgres.host,
                    "POSTGRES_PORT": str(self.postgres.port),
                    "POSTGRES_USER": self.postgres.user,
                    "POSTGRES_PASSWORD": self.postgres.password,
                    "POSTGRES_DBNAME": name,
                }
            )
        else:
            raise ValueError(f"unknown store {store!r}")
        Path(env["IDO_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        return Place(store=store, label=label, env=env, log_dir=self.work_dir / store / label / "logs")

    def tokens_file(self, municipalities: int = 10) -> Path:
        """Municipality tokens for the load generators ("<code> <token>" per line)."""
        path = self.work_dir / "tokens.txt"
        if path.exists():
            return path
        settings = load_settings({"IDO_KEYS_DIR": str(self.keys_dir)})
        init_token_files(settings)
        private = settings.jwt_private_key_file.read_bytes()
        lines = []
        for code in municipality_codes(municipalities):
            token, _ = issue_token(
                private, audience=SERVICE_NAMES, role="municipality", municipality_code=code, ttl=timedelta(hours=6)
            )
            lines.append(f"{code} {token}\n")
        path.write_text("".join(lines), encoding="utf-8")
        return path

    def cleanup(self) -> None:
        if self.postgres is not None:
            for name in self.databases:
                try:
                    self.postgres.drop_database(name)
                except psycopg.Error:
                    pass


@dataclass
class Place:
    store: str
    label: str
    env: dict[str, str]
    log_dir: Path

    @property
    def settings(self) -> Settings:
        return load_settings(self.env)

    def with_env(self, **extra: Any) -> dict[str, str]:
        return {**self.env, **{k: str(v) for k, v in extra.items()}}
