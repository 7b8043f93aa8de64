"""A loopback stand-in of Datadog's metrics intake (POST /api/v2/series), with faults on demand.

It answers as the intake does (Datadog API reference, "Submit metrics"): 202 ``{"errors": []}``
for an accepted payload; 403 ``{"errors": ["Forbidden"]}`` without a valid ``DD-API-KEY``
header; 400 for a body that is not a series payload; 413 over 512,000 bytes. Faults: the next
``times`` requests (or all, ``times=None``) answer a 5xx, a 429 with ``Retry-After``, a 403, or
hang ``seconds`` before answering (a timeout for a client with a shorter read timeout).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal

__all__ = ["DatadogStandIn", "Fault", "forwarder_overrides", "start_datadog_standin"]

SERIES_PATH: Final = "/api/v2/series"
MAX_PAYLOAD_BYTES: Final = 512_000
type FaultKind = Literal["status", "rate_limit", "forbidden", "hang"]


@dataclass(slots=True)
class Fault:
    """One fault rule: ``kind`` for the next ``times`` requests (None: until cleared)."""

    kind: FaultKind
    times: int | None = None
    status: int = 503
    retry_after: int = 1
    seconds: float = 5.0


class _State:
    def __init__(self, api_key: str) -> None:
        self.lock = threading.Lock()
        self.api_key = api_key
        self.series: list[dict[str, Any]] = []
        self.requests = 0
        self.fault: Fault | None = None

    def take_fault(self) -> Fault | None:
        with self.lock:
            self.requests += 1
            fault = self.fault
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.fault = None
            return fault


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        self.state = state
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the console."""

    def _answer(
        self, status: int, errors: list[str], headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps({"errors": errors}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        """Only POST /api/v2/series exists here."""
        self._answer(404, ["Not found"])

    def do_POST(self) -> None:
        """Check the key, apply a fault if one is set, then validate and record the series."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path.split("?", 1)[0] != SERIES_PATH:
            self._answer(404, ["Not found"])
            return
        state = self.server.state
        fault = state.take_fault()
        if fault is not None and self._faulted(fault):
            return
        if self.headers.get("DD-API-KEY") != state.api_key:
            self._answer(403, ["Forbidden"])
            return
        if length > MAX_PAYLOAD_BYTES:
            self._answer(413, ["Payload too large"])
            return
        series = _series(body)
        if series is None:
            self._answer(400, ['Payload is not a {"series": [...]} object'])
            return
        with state.lock:
            state.series.extend(series)
        self._answer(202, [])

    def _faulted(self, fault: Fault) -> bool:
        if fault.kind == "hang":
            time.sleep(fault.seconds)
            return False  # then answers normally: a client that waited this long gets it
        if fault.kind == "forbidden":
            self._answer(403, ["Forbidden"])
        elif fault.kind == "rate_limit":
            self._answer(429, ["Too many requests"], {"Retry-After": str(fault.retry_after)})
        else:
            self._answer(fault.status, ["Internal server error"])
        return True


def _series(body: bytes) -> list[dict[str, Any]] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    series = payload.get("series") if isinstance(payload, dict) else None
    if not isinstance(series, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("metric"), str)
        and isinstance(s.get("points"), list)
        for s in series
    ):
        return None
    return series


class DatadogStandIn:
    """The running stand-in: its URL, what it recorded, and the fault switch."""

    def __init__(self, server: _Server) -> None:
        """Serve ``server`` on a daemon thread."""
        self._server = server
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever, name="datadog-standin", daemon=True
        )
        self._thread.start()

    @property
    def series(self) -> list[dict[str, Any]]:
        """Every series accepted so far, in arrival order."""
        with self._server.state.lock:
            return list(self._server.state.series)

    @property
    def requests(self) -> int:
        """Requests received on the series path, answered or faulted."""
        with self._server.state.lock:
            return self._server.state.requests

    def set_fault(self, fault: Fault | None) -> None:
        """Apply ``fault`` to the next requests; None clears it (the intake is back)."""
        with self._server.state.lock:
            self._server.state.fault = fault

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def start_datadog_standin(api_key: str, host: str = "127.0.0.1", port: int = 0) -> DatadogStandIn:
    """Start the stand-in on ``host:port`` (0: a free port) accepting ``api_key``."""
    return DatadogStandIn(_Server((host, port), _State(api_key)))


def forwarder_overrides(
    standin: DatadogStandIn, api_key: str, secrets_client: Any, *, stack_name: str
) -> dict[str, str]:
    """Template parameters that point the stack's metrics forwarder at the stand-in.

    The API key goes into a secret of the emulator (``secrets_client``), as on AWS.
    """
    name = f"{stack_name}/datadog-api-key"
    try:
        arn = secrets_client.create_secret(Name=name, SecretString=api_key)["ARN"]
    except secrets_client.exceptions.ResourceExistsException:
        arn = secrets_client.put_secret_value(SecretId=name, SecretString=api_key)["ARN"]
    return {"DatadogApiUrl": standin.url, "DatadogApiKeySecretArn": str(arn)}
