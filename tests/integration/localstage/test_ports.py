"""A stage stopped a moment ago leaves TIME-WAIT connections: they must not block a restart."""

from __future__ import annotations

import errno
import socket

import pytest

from localstage.ports import probe_port

pytestmark = pytest.mark.integration


def _port_left_in_time_wait() -> int:
    """A loopback port whose server closed a connection first, then stopped listening."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: it is the one left in TIME-WAIT
            assert client.recv(1) == b""
    return port


def test_a_port_held_only_by_time_wait_connections_is_free_for_the_stage() -> None:
    # given a port a stopped server leaves behind with a TIME-WAIT connection
    port = _port_left_in_time_wait()
    with socket.socket() as plain, pytest.raises(OSError, match="in use") as refused:
        plain.bind(("127.0.0.1", port))  # control: a bind without SO_REUSEADDR is refused
    assert refused.value.errno == errno.EADDRINUSE

    # when the stage probes it, then it is free, as it is to the stage's servers
    assert probe_port("127.0.0.1", port) == port


def test_a_port_something_listens_on_is_in_use() -> None:
    # given a listening socket
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])

        # when the stage probes its port, then it is refused as in use
        with pytest.raises(OSError, match="in use") as refused:
            probe_port("127.0.0.1", port)
    assert refused.value.errno == errno.EADDRINUSE


def test_port_zero_picks_a_free_port() -> None:
    assert probe_port("127.0.0.1", 0) > 0
