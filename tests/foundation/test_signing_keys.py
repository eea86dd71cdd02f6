"""The services' key files: made once, 0600, atomically; never remade from a missing public file;
the writer's MAC is stored with each event and never reaches the domain or the envelope."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from services.common.config import load_settings
from services.common.domain.chained import envelope_of, recorded_event
from services.common.eventstore import build_application
from services.common.secret_files import create_exclusive
from services.common.signing import ensure_record_key, record_mac, service_keys
from tests.support.toy import TOY_TOPIC, Counter, ToyApplication


def test_secret_files_are_0600_and_the_first_writer_wins(tmp_path: Path) -> None:
    path = tmp_path / "signing" / "x" / "record.key"
    results: list[bool] = []
    threads = [threading.Thread(target=lambda n=n: results.append(create_exclusive(path, bytes([n]) * 32)))
               for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(path.read_bytes())) == 1 and len(path.read_bytes()) == 32
    assert list(path.parent.glob(".*.tmp")) == []
    assert ensure_record_key(path) == path.read_bytes()


def test_a_missing_public_key_set_is_rebuilt_never_a_new_private_key(tmp_path: Path) -> None:
    settings = load_settings({"IDO_KEYS_DIR": str(tmp_path / "keys")})
    keys = service_keys(settings, "ledger", ["ido.expenditures.v1"])
    first = keys.ensure()
    [private] = list(keys.directory.glob("ledger-*.pem"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert keys.ensure() == first  # a second start changes nothing
    keys.keyset_file.unlink()
    settings.trusted_keyset_file.unlink()
    again = keys.ensure()
    assert [k.kid for k in again.keys] == [k.kid for k in first.keys]
    assert list(keys.directory.glob("ledger-*.pem")) == [private]
    published = json.loads(settings.trusted_keyset_file.read_text())
    assert [k["kid"] for k in published["keys"]] == [first.keys[0].kid]
    # after a rotation, a lost key set is not guessed: the operator restores it
    keys.rotate()
    keys.keyset_file.unlink()
    with pytest.raises(ValueError, match="restore the key set"):
        keys.ensure()


def test_the_record_mac_is_stored_but_never_seen_by_the_domain(tmp_path: Path) -> None:
    settings = load_settings({"IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys")})
    app = build_application(ToyApplication, settings.eventsourcing_env("toy"))
    counter = Counter.start("mac")
    counter.add(5)
    app.save(counter)
    key = (settings.signing_dir("toy") / "record.key").read_bytes()
    assert stat.S_IMODE((settings.signing_dir("toy") / "record.key").stat().st_mode) == 0o600
    for notification in app.recorder.select_notifications(start=1, limit=10):
        _key, envelope, mac = recorded_event(app.mapper, notification)
        assert mac == record_mac(key, envelope["hash"])
        assert "record_mac" not in envelope["payload"]
        assert b"record_mac" in notification.state
        event = app.mapper.to_domain_event(notification)
        assert not hasattr(event, "record_mac")
        assert envelope_of(event) == envelope
    assert app.repository.get(counter.id).total_cents == 5
    # with IDO_PROVENANCE=off (benchmarks only) nothing is added
    off = load_settings({"IDO_DATA_DIR": str(tmp_path / "off"), "IDO_KEYS_DIR": str(tmp_path / "keys"),
                         "IDO_PROVENANCE": "off"})
    plain = build_application(ToyApplication, off.eventsourcing_env("toy"))
    plain.save(Counter.start("plain"))
    [stored] = plain.recorder.select_notifications(start=1, limit=10)
    assert recorded_event(plain.mapper, stored)[2] is None
    assert TOY_TOPIC.producer == "toy"
