"""Security: no secrets in the repository or the logs; services bind to 127.0.0.1 unless told otherwise.

- Every file git tracks (or would add: untracked, not ignored) is scanned for PEM private keys,
  JWTs and bearer tokens.
- Settings read key files from the environment's paths, never from the repository.
- A real `ido serve` binds 127.0.0.1 by default (read from /proc/net/tcp), and the address
  IDO_BIND_HOST names when set.
- A run of real processes (service, relay, projector) is driven with valid, expired, forged and
  revoked tokens and with personal data in every text field, including refused requests; the
  captured logs of every process hold no token, no piece of one, and none of the personal data.
"""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.auth import RevocationList, issue_token
from services.common.config import load_settings
from services.common.definition import SERVICE_NAMES
from tests.resilience.figures import Figures
from tests.resilience.stack import expenditure, prepare_payments
from tests.resilience.support import REPO, Client, Processes, StackEnv, assert_no_secrets, free_port, wait_for
from tests.support.infra import KafkaInfo, PostgresInfo

# Built from pieces, so this file does not match itself.
PEM_PRIVATE = re.compile("-----BEGIN " + r"([A-Z0-9 ]*)PRIVATE KEY-----")
JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{40,}")
"""A signed JWT: its signature part is at least 40 characters (EdDSA: 86); a test's placeholder
such as `...c2lnbmF0dXJl` ("signature") is no credential."""
BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{20,}")
PERSONAL = ["Jan de Vries-Bakker", "jan.devries@example.nl", "NL91ABNA0417164300", "06-12345678"]


def _candidate_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
        check=True, timeout=60,
    ).stdout.decode().split("\0")
    return [REPO / name for name in listed if name and (REPO / name).is_file()]


def test_no_private_key_or_token_in_the_repository(figures: Figures) -> None:
    found = []
    files = _candidate_files()
    assert len(files) > 50, "git listed too few files: is this the work tree?"
    for path in files:
        if path.stat().st_size > 5 * 1024 * 1024:
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        for pattern in (PEM_PRIVATE, JWT, BEARER):
            for match in pattern.finditer(text):
                found.append(f"{path.relative_to(REPO)}: {match.group(0)[:40]}...")
    figures.add_inputs("repository files scanned for secrets", len(files))
    assert not found, found


def test_key_files_come_from_the_environment_not_the_repository(tmp_path: Path) -> None:
    settings = load_settings({
        "IDO_JWT_PUBLIC_KEY_FILE": str(tmp_path / "pub.pem"), "IDO_JWT_PRIVATE_KEY_FILE": str(tmp_path / "priv.pem"),
        "IDO_REVOKED_TOKENS_FILE": str(tmp_path / "revoked.txt"),
    })
    assert settings.jwt_public_key_file == tmp_path / "pub.pem"
    assert settings.jwt_private_key_file == tmp_path / "priv.pem"
    defaults = load_settings({})
    default_keys = (REPO / defaults.jwt_private_key_file).resolve()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(default_keys)], cwd=REPO, timeout=30)
    assert ignored.returncode == 0, f"the default key path {default_keys} is not ignored by git"


def test_the_compose_secrets_folder_is_ignored_by_git() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", "secrets/jwt_private.pem"], cwd=REPO, timeout=30)
    assert ignored.returncode == 0


def _listening(port: int) -> set[str]:
    """Local addresses listening (state 0A) on ``port`` (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            address, port_hex = parts[1].rsplit(":", 1)
            if int(port_hex, 16) == port and parts[3] == "0A":
                if len(address) == 8:
                    found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add(address)
    return found


def test_services_bind_to_loopback_unless_configured_otherwise(
    procs: Processes, tmp_path: Path, kafka: KafkaInfo
) -> None:
    stack = StackEnv(tmp_path, kafka, None)
    stack.settings()
    env = {k: v for k, v in stack.env().items()}
    default = procs.service("ledger", env, name="ledger-default")
    assert default.port is not None
    assert _listening(default.port) == {"127.0.0.1"}
    other = procs.service("payments", {**env, "IDO_BIND_HOST": "127.0.0.2"}, name="payments-127.0.0.2",
                          host="127.0.0.2")
    assert other.port is not None
    assert _listening(other.port) == {"127.0.0.2"}
    assert load_settings({}).bind_host == "127.0.0.1"


def test_no_token_and_no_personal_data_in_the_logs_of_a_run(
    procs: Processes, database: PostgresInfo, kafka: KafkaInfo, tmp_path: Path, figures: Figures
) -> None:
    stack = StackEnv(tmp_path, kafka, database, extra={"IDO_LOG_LEVEL": "DEBUG"})
    settings = stack.settings()
    env = stack.env()
    payments = procs.service("payments", env)
    ledger = procs.service("ledger", env)
    procs.relay("ledger", env)
    procs.relay("payments", env)
    procs.projector(env)
    private = settings.jwt_private_key_file.read_bytes()
    good = stack.token("municipality", "GM0363")
    ministry = stack.token("ministry")
    expired, _ = issue_token(private, audience=SERVICE_NAMES, role="ministry", ttl=timedelta(seconds=-5))
    other_key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    forged, _ = issue_token(other_key, audience=SERVICE_NAMES, role="ministry")
    revoked, revoked_id = issue_token(private, audience=SERVICE_NAMES, role="ministry")
    RevocationList(settings.revoked_tokens_file).revoke(revoked_id)
    prepare_payments(Client(payments.port or 0, {"Authorization": f"Bearer {ministry}"}))
    requests = 0
    last_event = ""
    for n, token in enumerate([good, expired, forged, revoked, good + "x", "not-a-jwt", good]):
        client = Client(ledger.port or 0, {"Authorization": f"Bearer {token}", "X-Request-Id": f"sec-{n}"})
        body = {**expenditure(n, 100 + n, "sec"), "category": "promotion"}
        body["counterparty"] = {"id": "P-1", "name": PERSONAL[0]}
        body["description"] = f"paid to {PERSONAL[1]} on {PERSONAL[2]}, phone {PERSONAL[3]}"
        answer = client.post("/v1/municipalities/GM0363/expenditures", body)
        requests += 1
        if token == good and answer.status == 201:
            last_event = answer.body["event_id"]
        refused = client.post("/v1/municipalities/GM0363/expenditures", {**body, "amount_cents": "12.50"})
        requests += 1
        assert refused.status in (401, 422), refused
        balances = client.get(f"/v1/municipalities/GM0363/balances/2024?includes_event_id={last_event or n}")
        requests += 1
        assert balances.status in (200, 401, 422, 503), balances
        client.close()
    auditor = Client(ledger.port or 0, stack.headers("auditor"))
    wait_for(lambda: auditor.get(f"/v1/municipalities/GM0363/balances/2024?includes_event_id={last_event}")
             .status == 200, 60, "the postings to be projected")
    requests += 1
    figures.add_inputs("token and personal-data probes", requests)
    logs = procs.logs()
    assert all(text for text in logs.values()), "a process wrote no log at all: nothing was scanned"
    assert "POST /v1/municipalities/" in logs["ledger"], "the ledger's access log is missing: nothing was scanned"
    lines = assert_no_secrets(logs, [good, ministry, expired, forged, revoked, *stack.kafka_passwords()], PERSONAL)
    assert lines > 20


def _aligned_csv(header: bytes, row: bytes, rows: int, limit: int, extra: bytes, extra_rows: int) -> bytes:
    """A CSV whose first ``limit`` bytes end exactly at a row's end, followed by more rows: a body cut
    at the limit is still a valid file, so cutting it silently would import part of it."""
    per_row, rest = divmod(limit - len(header), rows)
    pad = per_row - (len(row) - 2)
    body = header + b"".join(row % (b"d" * (pad + (1 if i < rest else 0))) for i in range(rows))
    assert len(body) == limit
    return body + extra * extra_rows


CHUNKED = [
    pytest.param(
        "ledger", "/v1/municipalities/GM0363/expenditures:import",
        _aligned_csv(b"grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,"
                     b"reference\n", b"2024,promotion,1,2024-05-01,P,P,%s,R\n", 4000, 1024 * 1024,
                     b"2024,promotion,1,2024-05-01,P,P,EXTRA,R\n", 500),
        id="ledger import",
    ),
    pytest.param(
        "payments", "/v1/years/2024/annex?awarded_on=2024-01-15",
        _aligned_csv(b"cbs_code,name,amount\n", b"GM0363,%s,1.00\n", 1, 1024 * 1024, b"GM0599,R,1.00\n", 10),
        id="payments annex",
    ),
]


@pytest.mark.parametrize(("service", "path", "body"), CHUNKED)
def test_a_chunked_body_over_the_limit_is_refused_by_a_real_server(
    procs: Processes, tmp_path: Path, kafka: KafkaInfo, figures: Figures, service: str, path: str, body: bytes
) -> None:
    """A body without Content-Length (chunked) over 1 MiB gets 413 and nothing of it is stored."""
    import http.client

    from tests.resilience.stack import stored_envelopes

    stack = StackEnv(tmp_path, kafka, None)
    settings = stack.settings()
    proc = procs.service(service, stack.env())
    role = {"ledger": ("municipality", "GM0363"), "payments": ("ministry", None)}[service]
    if service == "payments":
        prepare_payments(Client(proc.port or 0, stack.headers("ministry")))
    before = len(stored_envelopes(settings, service))
    connection = http.client.HTTPConnection("127.0.0.1", proc.port or free_port(), timeout=60)

    def chunks() -> object:
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    connection.request(
        "POST", path, body=chunks(), encode_chunked=True,
        headers={**stack.headers(*role), "Content-Type": "text/csv", "Transfer-Encoding": "chunked"},
    )
    try:
        status = connection.getresponse().status
    except (ConnectionError, http.client.HTTPException):
        status = 0  # the server closed the connection on the oversized body: refused too
    finally:
        connection.close()
    figures.add_inputs("body over 1 MiB", 1)
    assert len(stored_envelopes(settings, service)) == before, "part of an oversized body was stored"
    assert status in (413, 0), status


@pytest.mark.parametrize(
    ("service", "path", "body"),
    [
        ("payments", "/v1/years/2024/grants/GM0363/advances", {"amount_cents": "12.50", "paid_on": "x"}),
        ("bridge", "/bridge/libraries/NL-KVK-10000001/payments", {"amount_cents": "12.50", "paid_on": "x"}),
        pytest.param(
            "ledger", "/v1/municipalities/GM0363/expenditures", {"amount_cents": "12.50"},
        ),
    ],
)
@pytest.mark.parametrize("token", ["none", "expired", "forged"])
def test_an_unauthenticated_caller_learns_nothing_from_validation(
    tmp_path: Path, service: str, path: str, body: dict[str, object], token: str
) -> None:
    """Without a valid token the answer is 401 whatever the body: validation results are for callers only."""
    from services.common.definition import service_definition

    stack = StackEnv(tmp_path, None, None)
    settings = stack.settings()
    client = service_definition(service).create_http_app(settings).test_client()
    headers: dict[str, str] = {}
    if token == "expired":
        value, _ = issue_token(
            settings.jwt_private_key_file.read_bytes(), audience=SERVICE_NAMES, role="ministry",
            ttl=timedelta(seconds=-5),
        )
        headers["Authorization"] = f"Bearer {value}"
    elif token == "forged":
        other_key = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        value, _ = issue_token(other_key, audience=SERVICE_NAMES, role="ministry")
        headers["Authorization"] = f"Bearer {value}"
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 401, (response.status_code, response.json)
