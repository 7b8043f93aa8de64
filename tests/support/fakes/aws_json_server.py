"""A loopback stand-in for an AWS JSON-protocol endpoint that plays a script of answers."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Answer", "ScriptedServer", "Seen", "scripted_server"]


@dataclass(frozen=True, slots=True)
class Answer:
    """One scripted answer; ``hang`` answers nothing (the client's read timeout must fire)."""

    status: int = 200
    body: bytes = b"{}"
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False
    close: bool = False  # close the connection after answering, without saying so

    @classmethod
    def error(cls, status: int, code: str, message: str = "scripted") -> Answer:
        """A DynamoDB-shaped error answer."""
        body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
        return cls(status, json.dumps(body).encode())

    @classmethod
    def ok(cls, payload: Any) -> Answer:
        """A 200 with ``payload`` as JSON."""
        return cls(200, json.dumps(payload).encode())


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]


@dataclass
class ScriptedServer:
    """Plays ``script`` in order, then ``default``; records every request."""

    url: str
    script: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)  # a connection was closed

    def next_answer(self) -> Answer:
        return self.script.pop(0) if self.script else self.default

    def targets(self) -> list[str]:
        """The X-Amz-Target of every request received, in order."""
        return [seen.headers.get("x-amz-target", "") for seen in self.seen]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state = self.server.state
        state.seen.append(
            Seen(
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                (str(self.client_address[0]), int(self.client_address[1])),
            )
        )
        answer = state.next_answer()
        if answer.hang:
            state.release.wait(30)  # until the test ends; the client's timeout fires first
            self.close_connection = True
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)
        if answer.close:
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ScriptedServer

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.state.closed.set()


def scripted_server() -> Iterator[ScriptedServer]:
    """Start a server on a free loopback port (a generator for a pytest fixture)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.state = ScriptedServer(url=f"http://{host!s}:{port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.state.release.set()
        server.shutdown()
        server.server_close()
