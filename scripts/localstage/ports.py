"""Port probes that see a loopback port as the stage's servers will when they bind it."""

from __future__ import annotations

import socket

__all__ = ["probe_port"]


def probe_port(host: str, port: int) -> int:
    """Bind host:port and release it at once; the port bound (port 0 picks a free one).

    SO_REUSEADDR, as every server of the stage sets it (http.server and werkzeug do): a port
    whose only users are TIME-WAIT connections of a stage stopped a moment ago is free to them,
    so it is free here too. A port something listens on raises OSError (errno EADDRINUSE).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return int(probe.getsockname()[1])
