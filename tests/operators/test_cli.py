"""One CLI: every command answers --help, and `ido import` sends a CSV through the HTTP API."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from services.common.cli import build_parser, main
from services.common.config import Settings
from services.common.eventstore import build_application
from services.ledger.application.app import LedgerApplication
from services.ledger.entrypoints.definition import create_app
from tests.support.tokens import TokenFactory

REPO = Path(__file__).resolve().parents[2]


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


def test_every_command_and_subcommand_answers_help() -> None:
    paths = _command_paths(build_parser())
    assert ("audit", "replay") in paths and ("import", "annex") in paths and ("tokens", "issue") in paths
    for path in paths:
        result = subprocess.run(
            [sys.executable, "-m", "services.common.cli", *path, "--help"], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, (path, result.stderr)
        assert result.stdout.startswith("usage: ido"), path


def test_ido_import_expenditures_goes_through_the_api_atomically(
    settings: Settings,
    tokens: TokenFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = dataclasses.replace(settings, years_open_before_award=frozenset({2024}))  # no awards here (issue 15)
    app = build_application(LedgerApplication, settings.eventsourcing_env("ledger"))
    server = make_server("127.0.0.1", 0, create_app(settings, app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    header = "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"
    good = tmp_path / "good.csv"
    good.write_text(header + "2024,promotion,3000,2024-05-01,PRINT-1,Printer,posters,R1\n"
                    "2024,promotion,2000,2024-05-02,PRINT-1,Printer,flyers,R2\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "2024,promotion,3000,2024-05-01,PRINT-1,Printer,posters,R3\n"
                   "2024,coffee,12.5,2024-05-02,PRINT-1,Printer,flyers,R4\n")
    token_file = tmp_path / "token"
    token_file.write_text(tokens.token("municipality", "GM0363"))
    monkeypatch.setenv("IDO_DATA_DIR", str(settings.data_dir))
    try:
        stored_before = len(app.recorder.select_notifications(start=1, limit=1000))
        with pytest.raises(SystemExit) as refused:
            main(["import", "expenditures", str(bad), "--municipality", "GM0363", "--url", url,
                  "--token-file", str(token_file)])
        assert refused.value.code == 1
        assert "line 3" in capsys.readouterr().out
        assert len(app.recorder.select_notifications(start=1, limit=1000)) == stored_before
        main(["import", "expenditures", str(good), "--municipality", "GM0363", "--url", url,
              "--token-file", str(token_file)])
        assert len(app.recorder.select_notifications(start=1, limit=1000)) == stored_before + 2
        # the same file again (same default idempotency key): nothing new
        main(["import", "expenditures", str(good), "--municipality", "GM0363", "--url", url,
              "--token-file", str(token_file)])
        assert len(app.recorder.select_notifications(start=1, limit=1000)) == stored_before + 2
    finally:
        server.shutdown()


def test_ido_tokens_issue_and_revoke(tmp_path: Path) -> None:
    from services.common.auth import verifier_for
    from services.common.config import load_settings
    from services.common.errors import Unauthenticated

    env = {**__import__("os").environ, "IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_DATA_DIR": str(tmp_path / "d")}
    subprocess.run(
        [sys.executable, "-m", "services.common.cli", "tokens", "init-keys"],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )
    issued = subprocess.run(
        [sys.executable, "-m", "services.common.cli", "tokens", "issue", "--role", "municipality",
         "--municipality", "GM0363", "--audience", "ledger"],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )
    token_id_line, _subject_line, token = issued.stdout.strip().splitlines()
    token_id = token_id_line.removeprefix("token id: ")
    settings = load_settings(env)
    verifier = verifier_for(settings, "ledger")
    principal = verifier.verify(f"Bearer {token}")
    assert (principal.role, principal.municipality_code, principal.token_id) == ("municipality", "GM0363", token_id)
    subprocess.run(
        [sys.executable, "-m", "services.common.cli", "tokens", "revoke", token_id],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(f"Bearer {token}")
