"""contracts/ido_verify.py alone, in a directory of its own, under `python3 -I`, on real proofs."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.audit.checkpoint import write_checkpoint
from services.audit.prove import prove_consistency, prove_inclusion
from services.common.config import Settings
from tests.audit.support import record_history

VERIFIER = Path(__file__).resolve().parents[2] / "contracts" / "ido_verify.py"


def isolated_python() -> list[str]:
    """A `python3 -I` that has `cryptography` but cannot import the project, else this one with the
    project's packages blocked (an editable install puts them on every path of the virtualenv)."""
    probe = "import cryptography, importlib.util as u; raise SystemExit(u.find_spec('contracts') is not None)"
    found = shutil.which("python3")
    if found and subprocess.run([found, "-I", "-c", probe], capture_output=True).returncode == 0:
        return [found, "-I"]
    block = ("import runpy, sys; sys.modules.update(contracts=None, services=None); "
             "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    return [sys.executable, "-I", "-c", block]


def run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*isolated_python(), "ido_verify.py", *args], cwd=directory, capture_output=True,
                          text=True, timeout=60)


def test_the_standalone_verifier_checks_real_heads_and_proofs_and_refuses_tampered_ones(
    live: Settings, tmp_path: Path
) -> None:
    services = record_history(live)
    services.publish()
    target = services.expenditures[0]
    old = write_checkpoint(live)
    services.spend("GM0344", 250_00, "2024-06-01")
    services.publish()
    services.close()
    new = write_checkpoint(live)

    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(VERIFIER, auditor / "ido_verify.py")
    shutil.copy(live.checkpoint_public_key_file, auditor / "key.pem")
    shutil.copy(old, auditor / "old.json")
    shutil.copy(new, auditor / "new.json")
    inclusion = prove_inclusion(live, target["event_id"], checkpoint=new)
    consistency, problems = prove_consistency(live, old, new)
    assert not problems
    (auditor / "inclusion.json").write_text(json.dumps(inclusion))
    (auditor / "consistency.json").write_text(json.dumps(consistency))

    key = ("--public-key", "key.pem")
    for args in (("head", *key, "new.json"), ("inclusion", *key, "inclusion.json", "--head", "new.json"),
                 ("consistency", *key, "consistency.json", "--old", "old.json", "--new", "new.json")):
        done = run(auditor, *args)
        assert done.returncode == 0 and done.stdout.rstrip().endswith("verified"), (args, done.stdout, done.stderr)
    assert "store:ledger" in run(auditor, "inclusion", *key, "inclusion.json").stdout

    def tampered(name: str, document: dict) -> str:
        (auditor / name).write_text(json.dumps(document))
        return name

    head = json.loads(new.read_text())
    changed_head = {**head, "logs": {**head["logs"], "store:ledger": {"size": 4, "root": "ab" * 32}}}
    store_proof = next(p for p in inclusion["proofs"] if p["log"] == "store:ledger")
    other_proofs = [p for p in inclusion["proofs"] if p is not store_proof]
    changed_amount = {**store_proof["envelope"], "payload": {**store_proof["envelope"]["payload"], "amount_cents": 1}}
    topic_proof = next(p for p in inclusion["proofs"] if p["log"].startswith("topic:"))
    forged_value = base64.b64encode(base64.b64decode(topic_proof["message"]["value"]).replace(b"1234567", b"1234500"))
    from services.audit.signing import signing_key

    signing_key(tmp_path / "other-private.pem", auditor / "k.pem")
    failures = {
        "a changed head": ("head", *key, tampered("h.json", changed_head)),
        "a head against another key": ("head", "--public-key", "k.pem", "new.json"),
        "a proof against a changed head": ("inclusion", *key, tampered("i1.json", {**inclusion, "head": changed_head})),
        "a path with a changed node": ("inclusion", *key, tampered("i2.json", {**inclusion, "proofs": [
            {**store_proof, "path": ["00" * 32, *store_proof["path"][1:]]}, *other_proofs]})),
        "a proof at another position": ("inclusion", *key, tampered("i3.json", {**inclusion, "proofs": [
            {**store_proof, "index": store_proof["index"] + 1}, *other_proofs]})),
        "an envelope changed after hashing": ("inclusion", *key, tampered("i4.json", {**inclusion, "proofs": [
            {**store_proof, "envelope": changed_amount}, *other_proofs]})),
        "a forged message": ("inclusion", *key, tampered("i5.json", {**inclusion, "proofs": [
            {**topic_proof, "message": {**topic_proof["message"], "value": forged_value.decode()}}]})),
        "a proof against another head than the one held": ("inclusion", *key, "inclusion.json", "--head", "old.json"),
        "a consistency proof with a changed node": ("consistency", *key, tampered("c1.json", {
            **consistency, "proofs": {**consistency["proofs"], "store:ledger": {
                **consistency["proofs"]["store:ledger"], "path": ["00" * 32] * 3}}})),
        "old and new the other way round": ("consistency", *key, tampered("c2.json", {
            **consistency, "old": consistency["new"], "new": consistency["old"]})),
    }
    for what, args in failures.items():
        done = run(auditor, *args)
        assert done.returncode == 1 and "NOT verified" in done.stdout, (what, done.stdout, done.stderr)
    for args in (("head", *key, "missing.json"), ("head", "--public-key", "missing.pem", "new.json"),
                 ("inclusion", *key, "new.json"), ("head",)):
        assert run(auditor, *args).returncode == 2, args


@pytest.mark.parametrize("module", ["contracts/ido_verify.py"])
def test_the_standalone_verifier_imports_only_the_standard_library_and_cryptography(module: str) -> None:
    import ast

    tree = ast.parse(VERIFIER.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - set(sys.stdlib_module_names) == {"cryptography"}, imported
