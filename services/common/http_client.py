"""The `ido import` commands: a CSV file to a service's atomic import endpoint, over HTTP.

Going through the API (not the store) keeps the same token check, validation and audit trail as
any other caller.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from services.common.config import load_settings
from services.common.progress import Progress


def _token(token_file: str | None) -> str:
    if token_file:
        return Path(token_file).read_text(encoding="utf-8").strip()
    token = os.environ.get("IDO_TOKEN", "").strip()
    if not token:
        raise ValueError("no token: pass --token-file or set IDO_TOKEN")
    return token


def import_csv(args: argparse.Namespace) -> None:
    data = Path(args.file).read_bytes()
    service = "payments" if args.kind == "annex" else "ledger"
    base = (args.url or f"http://127.0.0.1:{load_settings().port(service)}").rstrip("/")
    if args.kind == "annex":
        url = f"{base}/v1/years/{args.year}/annex?awarded_on={args.awarded_on}"
    else:
        url = f"{base}/v1/municipalities/{args.municipality}/expenditures:import"
    rows = max(0, sum(1 for line in data.decode("utf-8").splitlines() if line and not line.startswith("#")) - 1)
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "text/csv")
    request.add_header("Authorization", f"Bearer {_token(args.token_file)}")
    request.add_header("Idempotency-Key", args.idempotency_key or hashlib.sha256(data).hexdigest())
    with Progress(f"import {args.kind}", total=rows, unit="row") as progress:
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                body = json.loads(response.read() or b"{}")
                status = response.status
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
            status = error.code
        if 200 <= status < 300:
            progress.update(rows)
    print(json.dumps(body, indent=2, ensure_ascii=False))
    if not 200 <= status < 300:
        print(f"ido import: refused with {status}; nothing was imported", file=sys.stderr)
        sys.exit(1)
