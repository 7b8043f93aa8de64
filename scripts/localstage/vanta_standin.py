"""Vanta stand-in: a development and test fixture HTTP server speaking the Vanta API contract.

This module is the HTTP side (query parsing, answers, the /_admin endpoints), the StandIn /
start_standin API and the command line. The fault plan is localstage.vanta_faults, the state
(tokens, rate windows, counters) localstage.vanta_state, the generated data localstage.vanta_data.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast
from urllib.parse import parse_qs, urlsplit

from localstage.vanta_data import (
    SEVERITIES,
    AssetQuery,
    DataError,
    Dataset,
    JsonObject,
    Page,
    RemediationQuery,
    VulnerabilityQuery,
    parse_date,
)
from localstage.vanta_faults import (
    DEFAULT_EXPIRES_IN,
    ENDPOINTS,
    FaultPlan,
    FaultRule,
    StandInError,
    apply_malformed,
)
from localstage.vanta_state import DEFAULT_CREDENTIALS, Credentials, HttpError, State

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "DEFAULT_CREDENTIALS",
    "ENDPOINTS",
    "Credentials",
    "FaultPlan",
    "FaultRule",
    "StandIn",
    "StandInError",
    "main",
    "start_standin",
]

logger = logging.getLogger("localstage.vanta_standin")
_LIST_ENDPOINTS: Final = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
_DEFAULT_PAGE_SIZE: Final = 10
_MAX_PAGE_SIZE: Final = 100
_TRUE_FALSE: Final = {"true": True, "false": False}


# ----- query parsing -----


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _many(params: Mapping[str, list[str]], name: str) -> frozenset[str] | None:
    """Repeated parameters and comma-separated values both select several."""
    values = [v.strip() for raw in params.get(name, ()) for v in raw.split(",") if v.strip()]
    return frozenset(values) if values else None


def _bool(params: Mapping[str, list[str]], name: str) -> bool | None:
    raw = _one(params, name)
    if raw is None or raw == "":
        return None
    value = _TRUE_FALSE.get(raw.lower())
    if value is None:
        raise HttpError(400, f"{name} must be true or false, got {raw!r}")
    return value


def _date(params: Mapping[str, list[str]], name: str) -> int | None:
    raw = _one(params, name)
    if raw is None or raw == "":
        return None
    try:
        return parse_date(raw)
    except DataError as exc:
        raise HttpError(400, f"{name}: {exc}") from exc


def _severities(params: Mapping[str, list[str]]) -> frozenset[str] | None:
    values = _many(params, "severity")
    if values is None:
        return None
    upper = frozenset(v.upper() for v in values)
    if not upper <= set(SEVERITIES):
        raise HttpError(400, f"severity must be one of {', '.join(SEVERITIES)}")
    return upper


def _page_size(params: Mapping[str, list[str]]) -> int:
    raw = _one(params, "pageSize")
    if raw is None:
        return _DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= _MAX_PAGE_SIZE:
        raise HttpError(400, f"pageSize must be an integer from 1 to 100, got {raw!r}")
    return size


def _vulnerability_query(params: Mapping[str, list[str]]) -> VulnerabilityQuery:
    return VulnerabilityQuery(
        include_without_sla=bool(_bool(params, "includeVulnerabilitiesWithoutSlas")),
        severities=_severities(params),
        is_fixable=_bool(params, "isFixAvailable"),
        integration_ids=_many(params, "integrationId"),
        is_deactivated=_bool(params, "isDeactivated"),
        q=_one(params, "q") or None,
        external_vulnerability_id=_one(params, "externalVulnerabilityId") or None,
        package_identifier=_one(params, "packageIdentifier") or None,
        vulnerable_asset_id=_one(params, "vulnerableAssetId") or None,
        sla_after_ms=_date(params, "slaDeadlineAfterDate"),
        sla_before_ms=_date(params, "slaDeadlineBeforeDate"),
    )


def _remediation_query(params: Mapping[str, list[str]]) -> RemediationQuery:
    return RemediationQuery(
        severities=_severities(params),
        integration_ids=_many(params, "integrationId"),
        is_remediated_on_time=_bool(params, "isRemediatedOnTime"),
        remediated_after_ms=_date(params, "remediatedAfterDate"),
        remediated_before_ms=_date(params, "remediatedBeforeDate"),
    )


def _asset_query(params: Mapping[str, list[str]]) -> AssetQuery:
    return AssetQuery(
        q=_one(params, "q") or None,
        integration_ids=_many(params, "integrationId"),
        asset_types=_many(params, "assetType"),
        external_account_id=_one(params, "assetExternalAccountId") or None,
    )


def _page_body(page: Page, duplicates: int) -> JsonObject:
    """The page body; with duplicates, endCursor steps back so the next page repeats records."""
    if duplicates and len(page.items) > 1:
        back = min(duplicates, len(page.items) - 1)
        body = page.body(end_cursor=page.cursors[-1 - back])
        body["results"]["pageInfo"]["hasNextPage"] = True
        return body
    return page.body()


# ----- HTTP -----


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: State

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is a fault being tested, not a server bug.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, delayed ACKs add ~40 ms a call.
    disable_nagle_algorithm = True
    server_version = "VantaStandIn/1.0"
    sys_version = ""
    timeout = 30
    _body = b""
    _ROUTES: ClassVar[dict[str, str]] = {
        "/v1/vulnerabilities": "vulnerabilities",
        "/v1/vulnerability-remediations": "vulnerability-remediations",
        "/v1/vulnerable-assets": "vulnerable-assets",
    }

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    # ----- plumbing -----

    def _send(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        declared_length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header(
            "Content-Length", str(len(body) if declared_length is None else declared_length)
        )
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if declared_length is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        if not self.path.startswith("/_admin/"):
            self.server.state.count_response(status)

    def _send_json(self, status: int, body: object) -> None:
        self._send(status, json.dumps(body).encode())

    def _send_error(self, error: HttpError) -> None:
        body = {"error": _ERROR_NAMES.get(error.status, "error"), "message": error.message}
        self._send(error.status, json.dumps(body).encode(), error.headers)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _read_json(self) -> JsonObject:
        raw = self._body
        if not raw.strip():
            return {}
        content_type = self.headers.get("Content-Type", "")
        try:
            if content_type.startswith("application/x-www-form-urlencoded"):
                return {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        return cast("JsonObject", body)

    # ----- verbs -----

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        # Read the body before any answer, or its bytes would be taken for the next request.
        self._body = self._read_body()
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        try:
            if path.startswith("/_admin/"):
                self._admin(method, path)
            elif path == "/oauth/token" and method == "POST":
                self._token()
            elif path.startswith("/v1/") and method == "GET":
                self._api(path, parse_qs(parts.query, keep_blank_values=True))
            else:
                self._send_error(HttpError(404, f"no route for {method} {path}"))
        except HttpError as error:
            self._send_error(error)

    def _admin(self, method: str, path: str) -> None:
        state = self.server.state
        if method == "GET" and path == "/_admin/state":
            self._send_json(200, state.snapshot())
            return
        if method != "POST":
            raise HttpError(405, f"{method} not allowed on {path}")
        body = self._read_json()
        try:
            self._admin_post(path, body)
        except (StandInError, DataError) as exc:
            if isinstance(exc, HttpError):
                raise
            raise HttpError(400, str(exc)) from exc
        self._send_json(200, state.snapshot())

    def _admin_post(self, path: str, body: JsonObject) -> None:
        state = self.server.state
        if path == "/_admin/faults":
            state.set_plan(FaultPlan.from_dict(body))
        elif path == "/_admin/reset":
            state.reset()
        elif path == "/_admin/dataset":
            updated = state.dataset.updated(body)
            with state.lock:
                state.dataset = updated
        elif path == "/_admin/revoke":
            state.revoke_all()
        else:
            raise HttpError(404, f"no admin route {path}")

    def _token(self) -> None:
        state = self.server.state
        state.count_request("token")
        fired = state.fire("token", 0)
        self._delay(fired.latency)
        body = self._read_json()
        client_id = str(body.get("client_id", ""))
        state.check_token_rate(client_id)
        if fired.error is not None:
            raise fired.error
        if body.get("grant_type") != "client_credentials":
            raise HttpError(400, "grant_type must be client_credentials")
        answer = state.mint(client_id, str(body.get("client_secret", "")))
        self._send_json(200, answer)

    def _delay(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def _api(self, path: str, params: dict[str, list[str]]) -> None:
        state = self.server.state
        endpoint, item_id = self._route(path)
        try:
            page_size = _page_size(params)
        except HttpError:
            page_size = _DEFAULT_PAGE_SIZE
        state.count_request(endpoint)
        # Validation errors come after auth, so an invalid pageSize still needs a token.
        state.authorise(self.headers.get("Authorization"))
        fired = state.fire(endpoint, page_size)
        self._delay(fired.latency)
        if fired.error is not None:
            raise fired.error
        started = time.thread_time()
        dataset = state.dataset
        if item_id is not None:
            record = (
                dataset.get_vulnerability(item_id)
                if endpoint == "vulnerabilities/{id}"
                else dataset.get_asset(item_id)
            )
            if record is None:
                raise HttpError(404, f"no {endpoint.split('/')[0]} with id {item_id!r}")
            items = [record]
            body: JsonObject = record
        else:
            page = self._page(dataset, endpoint, params)
            body = _page_body(page, fired.duplicates)
            if fired.vanish:
                # Same cursors, fewer records: those records were deleted between two pages.
                del page.items[: fired.vanish]
            items = page.items
        apply_malformed(items, fired.malformed, endpoint)
        if item_id is not None:
            body = items[0]
        raw = json.dumps(body).encode()
        state.record_page(endpoint, len(items), time.thread_time() - started)
        if fired.truncate == "short_read":
            self._send(200, raw[: len(raw) // 2], declared_length=len(raw))
        elif fired.truncate == "invalid_json":
            self._send(200, raw[: len(raw) // 2])
        else:
            self._send(200, raw)

    def _route(self, path: str) -> tuple[str, str | None]:
        endpoint = self._ROUTES.get(path)
        if endpoint is not None:
            return endpoint, None
        head, _, item_id = path.rpartition("/")
        if head in ("/v1/vulnerabilities", "/v1/vulnerable-assets") and item_id:
            return f"{head[4:]}/{{id}}", item_id
        raise HttpError(404, f"no route for GET {path}")

    @staticmethod
    def _page(dataset: Dataset, endpoint: str, params: Mapping[str, list[str]]) -> Page:
        size = _page_size(params)
        cursor = _one(params, "pageCursor") or None
        try:
            if endpoint == "vulnerabilities":
                return dataset.page_vulnerabilities(_vulnerability_query(params), size, cursor)
            if endpoint == "vulnerability-remediations":
                return dataset.page_remediations(_remediation_query(params), size, cursor)
            return dataset.page_assets(_asset_query(params), size, cursor)
        except DataError as exc:
            raise HttpError(400, str(exc)) from exc


_ERROR_NAMES: Final = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    429: "too_many_requests",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


# ----- public API -----


class StandIn:
    """A running stand-in: serves on a background thread until :meth:`stop`."""

    def __init__(self, server: _Server, credentials: tuple[Credentials, ...]) -> None:
        self._server = server
        self.credentials = credentials
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"vanta-standin-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def dataset(self) -> Dataset:
        """The data set being served."""
        return self._server.state.dataset

    def set_dataset(self, dataset: Dataset) -> None:
        """Serve another data set (e.g. a new revision) from the next request on."""
        with self._server.state.lock:
            self._server.state.dataset = dataset

    def set_faults(self, plan: FaultPlan | Mapping[str, Any]) -> None:
        """Replace the fault plan (rules, rate limits, token expiry) and its counters."""
        if not isinstance(plan, FaultPlan):
            plan = FaultPlan.from_dict(plan)
        self._server.state.set_plan(plan)

    def revoke_tokens(self) -> None:
        """Revoke every active token now, as if another process had minted a new one."""
        self._server.state.revoke_all()

    def reset(self) -> None:
        """Back to the initial fault plan; forget tokens, rate windows and counters."""
        self._server.state.reset()

    def minted_tokens(self) -> list[str]:
        """Every access token issued since the start, revoked and expired ones too."""
        with self._server.state.lock:
            return list(self._server.state.minted)

    def stats(self) -> JsonObject:
        """What GET /_admin/state answers: counters, faults with their counts, data set."""
        return self._server.state.snapshot()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise StandInError(f"the stand-in is a local fixture: bind to loopback, not {host!r}")


def start_standin(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    dataset: Dataset | None = None,
    credentials: Credentials | Sequence[Credentials] = DEFAULT_CREDENTIALS,
    faults: FaultPlan | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> StandIn:
    """Start the stand-in on a loopback address (port 0 picks a free one) in a daemon thread.

    ``clock`` drives token expiry and rate-limit windows, so tests can move time.
    """
    _check_loopback(host)
    creds = (credentials,) if isinstance(credentials, Credentials) else tuple(credentials)
    if not creds:
        raise StandInError("at least one client is needed")
    try:
        server = _Server((host, port), _Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StandInError(
                f"port {port} on {host} is already in use: pick another port (0 = any free one)"
            ) from exc
        raise StandInError(f"cannot listen on {host}:{port}: {exc}") from exc
    server.state = State(dataset or Dataset(), creds, faults or FaultPlan(), clock)
    return StandIn(server, creds)


def _parse_now(text: str) -> datetime:
    if text == "today":
        today = datetime.now(UTC).date()
        return datetime(today.year, today.month, today.day, tzinfo=UTC)
    return datetime.fromtimestamp(parse_date(text) / 1000, UTC)


def main(argv: Sequence[str] | None = None, stop: threading.Event | None = None) -> int:
    """CLI: serve until interrupted (or ``stop`` is set); prints the URL and credentials."""
    parser = argparse.ArgumentParser(
        prog="python -m localstage.vanta_standin",
        description="Vanta stand-in: a development and test fixture, never a real Vanta API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8030, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--vulnerabilities", type=int, default=5000)
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--remediations", type=int, default=2000)
    parser.add_argument("--now", default="today", help="data reference time: RFC 3339 or today")
    parser.add_argument("--client-id", default=DEFAULT_CREDENTIALS.client_id)
    parser.add_argument("--client-secret", default=DEFAULT_CREDENTIALS.client_secret)
    parser.add_argument("--rate-limit", type=int, default=0, help="requests/minute, 0 = off")
    parser.add_argument("--token-expires-in", type=float, default=DEFAULT_EXPIRES_IN)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        dataset = Dataset(
            seed=args.seed,
            vulnerability_count=args.vulnerabilities,
            asset_count=args.assets,
            remediation_count=args.remediations,
            now=_parse_now(args.now),
        )
        standin = start_standin(
            host=args.host,
            port=args.port,
            dataset=dataset,
            credentials=Credentials(args.client_id, args.client_secret),
            faults=FaultPlan(
                rate_limit_per_minute=args.rate_limit, token_expires_in=args.token_expires_in
            ),
        )
    except (StandInError, DataError) as exc:
        print(f"vanta-standin: {exc}", file=sys.stderr)
        return 2
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"Vanta stand-in (development and test fixture) listening on {standin.url}", flush=True)
    print(f"  VANTA_API_BASE_URL={standin.url}")
    print(f"  client_id={args.client_id}")
    print(f"  client_secret={args.client_secret}")
    print(f"  data: {json.dumps(dataset.to_dict())}")
    print(f"  admin: {standin.url}/_admin/state", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
