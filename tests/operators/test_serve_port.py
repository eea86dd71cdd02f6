"""`ido serve` with several workers gives each its own socket (SO_REUSEPORT), which would let a second
server on the same port share its connections silently; a port that is taken is refused first."""

from __future__ import annotations

import socket

import pytest

from services.common.gunicorn_settings import gunicorn_settings, refuse_a_taken_port


def _listening(reuse_port: bool) -> socket.socket:
    listener = socket.socket()
    if reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


@pytest.mark.parametrize("reuse_port", [True, False])
def test_a_port_another_server_listens_on_is_refused_naming_it(reuse_port: bool) -> None:
    with _listening(reuse_port) as stale:
        bind = f"127.0.0.1:{stale.getsockname()[1]}"
        with pytest.raises(SystemExit) as refused:
            refuse_a_taken_port(bind)
    assert str(refused.value).startswith(f"cannot serve on {bind}: ")


def test_a_free_port_is_not_refused_and_stays_free() -> None:
    with _listening(False) as probe:
        port = probe.getsockname()[1]
    refuse_a_taken_port(f"127.0.0.1:{port}")
    with socket.socket() as again:  # the check let go of it
        again.bind(("127.0.0.1", port))


def test_each_worker_listens_on_its_own_socket_only_with_several_workers() -> None:
    assert gunicorn_settings("127.0.0.1:1", 2, 4)["reuse_port"] is True
    assert gunicorn_settings("127.0.0.1:1", 1, 4)["reuse_port"] is False


def test_each_worker_freezes_what_it_built_before_its_first_request() -> None:
    """A worker's full garbage collection walked the whole app (~100 ms under load: the write path's p99)."""
    import gc

    from gunicorn.config import Config

    hook = gunicorn_settings("127.0.0.1:1", 2, 4)["post_worker_init"]
    config = Config()
    config.set("post_worker_init", hook)  # gunicorn takes it as a worker hook
    built = [object() for _ in range(1000)]  # noqa: F841 - alive, as a worker's app is
    frozen_before = gc.get_freeze_count()
    try:
        config.post_worker_init(None)
        assert gc.get_freeze_count() >= frozen_before + 1000
    finally:
        gc.unfreeze()
