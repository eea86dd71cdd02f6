"""Each `ido` command run for real, its effect checked: the annex import, the demo data, the API
documents, the contract documents and the token keys (beside tests/operators/test_cli.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from contracts import export
from services.common import apidocs
from services.common.auth import issue_token, verifier_for
from services.common.cli import main
from services.common.config import Settings, load_settings
from services.common.definition import SERVICE_NAMES
from services.common.eventstore import build_application
from services.payments.application.app import PaymentsApplication
from services.payments.entrypoints.definition import create_app as create_payments_app
from tests.support.tokens import TokenFactory

REPO = Path(__file__).resolve().parents[2]
DEMO_ANNEX_CENTS = {  # services/payments/demo/annex-demo.csv
    "GM0363": 725_000_00, "GM0599": 540_000_00, "GM0518": 460_000_00, "GM0344": 310_000_00,
    "GM0014": 205_000_00, "GM0772": 190_000_00,
}


def ido(*argv: str) -> int:
    """`ido ...` in this process: its exit status (0 when it returns without exiting)."""
    try:
        main(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    return 0


@pytest.fixture
def own_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """SQLite stores and keys under tmp_path, as a fresh installation would have them."""
    env = {"IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_ido_import_annex_awards_every_line_through_the_api(
    settings: Settings, tokens: TokenFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payments = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    payments.set_frame(2024, 1_713_000_000, date(2023, 12, 1))
    server = make_server("127.0.0.1", 0, create_payments_app(settings, payments), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    annex = tmp_path / "annex.csv"
    # the Dutch form with ; between cells, as the ministry's spreadsheet writes it
    annex.write_text("cbs_code;name;amount\nGM0363;Amsterdam;725.000,00\nGM0344;Utrecht;310.000,50\n")
    token_file = tmp_path / "token"
    token_file.write_text(tokens.token("ministry"))
    monkeypatch.setenv("IDO_DATA_DIR", str(settings.data_dir))
    try:
        capsys.readouterr()
        assert ido("import", "annex", str(annex), "--year", "2024", "--awarded-on", "2024-01-15",
                   "--url", url, "--token-file", str(token_file)) == 0
        printed = capsys.readouterr().out
        awarded = {g.original_municipality_code: g.amount_cents for g in payments.grants(2024)}
        assert awarded == {"GM0363": 725_000_00, "GM0344": 310_000_50}
        assert "GM0363" in printed and "GM0344" in printed
        # a year without its frame: refused, exit 1, nothing stored
        stored = payments.recorder.max_notification_id()
        assert ido("import", "annex", str(annex), "--year", "2025", "--awarded-on", "2025-01-15",
                   "--url", url, "--token-file", str(token_file)) == 1
        assert "nothing was imported" in capsys.readouterr().err
        assert payments.recorder.max_notification_id() == stored
    finally:
        server.shutdown()
        payments.close()


def test_ido_demo_loads_the_demo_once(own_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert ido("demo", "payments") == 0
    assert capsys.readouterr().out == "payments: illustrative demo data loaded\n"
    payments = build_application(PaymentsApplication, load_settings(own_env).eventsourcing_env("payments"))
    try:
        grants = payments.grants(2024)
        assert {g.original_municipality_code: (g.amount_cents, g.paid_cents) for g in grants} == {
            code: (cents, cents) for code, cents in DEMO_ANNEX_CENTS.items()  # the advance paid in full
        }
        stored = payments.recorder.max_notification_id()
    finally:
        payments.close()
    assert ido("demo", "payments") == 0
    assert capsys.readouterr().out == "payments: store already holds events; demo data not loaded again\n"
    payments = build_application(PaymentsApplication, load_settings(own_env).eventsourcing_env("payments"))
    try:
        assert payments.recorder.max_notification_id() == stored
    finally:
        payments.close()


@pytest.fixture
def docs_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """docs/api/ as an empty folder of a checkout whose contracts/generated/ is the real one."""
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "generated").symlink_to(export.GENERATED_DIR)
    docs = tmp_path / "docs" / "api"
    monkeypatch.setattr(apidocs, "API_DOCS_DIR", docs)
    yield docs


def test_ido_docs_api_writes_the_committed_documents_and_check_finds_a_stale_one(
    docs_copy: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    names = [f"{service}.openapi.json" for service in SERVICE_NAMES]
    assert ido("docs", "api") == 0
    assert capsys.readouterr().out.split() == [str(docs_copy / n) for n in names] + [str(docs_copy / "asyncapi.json")]
    for name in names:
        assert (docs_copy / name).read_text() == (REPO / "docs" / "api" / name).read_text(), name
    assert (docs_copy / "asyncapi.json").readlink() == Path("../../contracts/generated/asyncapi.json")
    assert ido("docs", "api", "--check") == 0
    assert capsys.readouterr().err == ""
    ledger = docs_copy / "ledger.openapi.json"
    ledger.write_text(ledger.read_text().replace('"IDO ledger: ', '"IDO ledger (edited): ', 1))
    assert ido("docs", "api", "--check") == 1
    assert capsys.readouterr().err == (
        "stale: docs/api/ledger.openapi.json (run: python -m services.common.apidocs)\n"
    )


def test_ido_contracts_writes_the_committed_contract_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(export, "GENERATED_DIR", tmp_path / "generated")
    assert ido("contracts") == 0
    written = sorted(Path(line) for line in capsys.readouterr().out.split())
    committed = sorted(REPO.joinpath("contracts", "generated").iterdir())
    assert [p.name for p in written] == [p.name for p in committed]
    assert all(p.parent == tmp_path / "generated" for p in written)
    assert [p.read_text() for p in written] == [p.read_text() for p in committed]


def test_ido_tokens_init_keys_makes_a_working_key_pair_once(
    own_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings(own_env)
    assert ido("tokens", "init-keys") == 0
    assert capsys.readouterr().out == (
        f"keys in {settings.jwt_private_key_file.parent}; revocation list {settings.revoked_tokens_file}\n"
    )
    assert settings.jwt_private_key_file.stat().st_mode & 0o777 == 0o600
    assert settings.revoked_tokens_file.read_text() == ""
    private = settings.jwt_private_key_file.read_bytes()
    public = settings.jwt_public_key_file.read_bytes()
    token, token_id = issue_token(private, role="auditor", audience=SERVICE_NAMES)
    assert verifier_for(settings, "ledger").verify(f"Bearer {token}").token_id == token_id
    # again: the keys stay, so every token issued before stays valid
    settings.revoked_tokens_file.write_text("some-revoked-id\n")
    assert ido("tokens", "init-keys") == 0
    assert (settings.jwt_private_key_file.read_bytes(), settings.jwt_public_key_file.read_bytes()) == (private, public)
    assert settings.revoked_tokens_file.read_text() == "some-revoked-id\n"
