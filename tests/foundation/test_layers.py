"""Issue 14: the one layer rule import-linter cannot check. The other rules are in pyproject.toml
([tool.importlinter]) and `lint-imports` checks them in `make test`."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _is_other_package(module: str, own: str) -> bool:
    return module.split(".")[0] in ("services", "contracts") and not (module == own or module.startswith(own + "."))


def private_imports(package: Path, own: str, root: Path = REPO) -> list[str]:
    """Imports in ``package`` of a private name (``_x``) or module of another package than ``own``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules, names = [node.module], [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                modules, names = [alias.name for alias in node.names], []
            else:
                continue
            for module in (m for m in modules if _is_other_package(m, own)):
                private = [part for part in module.split(".") if part.startswith("_")]
                private += [name for name in names if name.startswith("_")]
                if private:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {module}: {', '.join(private)}")
    return found


def test_the_audit_imports_no_private_name_of_another_package() -> None:
    assert private_imports(REPO / "services" / "audit", "services.audit") == []


def test_a_private_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "audit"
    package.mkdir()
    (package / "replay.py").write_text(
        "from services.ledger.read_side import PointInTime, _money\n"
        "import services.ledger._internal\n"
        "from services.audit.sources import _own  # its own: allowed\n"
        "from os import _exit  # not ours: not checked\n"
    )
    assert private_imports(package, "services.audit", root=tmp_path) == [
        "audit/replay.py:1: services.ledger.read_side: _money",
        "audit/replay.py:2: services.ledger._internal: _internal",
    ]


def test_the_runner_finds_every_service_and_tool_by_its_declaration() -> None:
    from services.common.definition import (
        SERVICE_NAMES,
        command_groups,
        projector,
        service_definition,
        view_rebuilder,
    )
    from services.ledger.entrypoints.projector import run as ledger_projector
    from services.ledger.entrypoints.view_rebuild import rebuild_view

    assert [service_definition(name).name for name in SERVICE_NAMES] == ["payments", "bridge", "ledger"]
    assert projector() is ledger_projector
    assert view_rebuilder() is rebuild_view
    assert [group.name for group in command_groups()] == ["audit", "recover"]


def test_each_declaration_agrees_with_the_published_topics_and_the_broker_rights() -> None:
    """What services/common derives per service (its relay's topic, principal and ACL, its port) comes
    from the declarations and the contracts; a service whose declaration names another topic than the
    contract's producer, or two services on one port, fail here."""
    from kafka.admin import ACLOperation

    from contracts.topics import PUBLISHED_TOPICS
    from services.common.definition import SERVICE_NAMES, service_definition
    from services.common.kafka_credentials import RELAYS
    from services.common.kafka_provisioning import RELAY_TOPICS, acls_for_prefix

    definitions = [service_definition(name) for name in SERVICE_NAMES]
    assert {d.name: d.topic for d in definitions} == RELAY_TOPICS
    assert sorted(spec.producer for spec in PUBLISHED_TOPICS) == sorted(SERVICE_NAMES)
    assert len({d.http_port for d in definitions}) == len(definitions)
    writes = {
        (acl.principal, acl.resource_pattern.resource_name)
        for acl in acls_for_prefix("")
        if acl.operation == ACLOperation.WRITE and acl.principal.startswith("User:ido-relay-")
    }
    assert writes == {(f"User:{RELAYS[d.name]}", d.topic.name) for d in definitions}
