"""Vanta API client: one token per run, cursor pages, retries, breaker, deadline and page rate."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode, urlsplit

from lambdakit.breaker import CircuitBreaker, CircuitOpenError, get_breaker
from lambdakit.lazy import lazy_import
from lambdakit.metrics import NullMetricSink
from lambdakit.retry import Deadline, Retrier, RetryError, parse_retry_after
from vulnstats.errors import (
    AuthError,
    DeadlineExceededError,
    RetriesExhaustedError,
    TransientUpstreamError,
    UpstreamCircuitOpenError,
    UpstreamProtocolError,
    VantaError,
    VantaHTTPError,
    truncate_body,
)
from vulnstats.vanta_config import (
    API_PAGE_SIZE_MAX,
    DEFAULT_BASE_URL,
    DEFAULT_REMEDIATION_OVERLAP,
    ClientStats,
    CredentialsProvider,
    HttpResponse,
    HttpSession,
    Page,
    PageRateLimiter,
    StaticCredentials,
    StructuredLogger,
    VantaClientConfig,
    clear_shared_session,
    format_rfc3339,
    remediation_window_start,
    shared_session,
    token_fingerprint,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from datetime import datetime

    import requests
    import requests.adapters

    from lambdakit.metrics import MetricSink
    from vulnstats.models import Entity
else:
    # requests costs tens of milliseconds to import: only the sync function, on its first
    # call, pays for it; modules that import vulnstats.models never do.
    requests = lazy_import("requests.adapters")

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_REMEDIATION_OVERLAP",
    "PAGES_FETCHED",
    "SCOPE",
    "ClientStats",
    "CredentialsProvider",
    "HttpResponse",
    "HttpSession",
    "Page",
    "PageRateLimiter",
    "StaticCredentials",
    "StructuredLogger",
    "VantaClient",
    "VantaClientConfig",
    "clear_shared_session",
    "format_rfc3339",
    "is_breaker_failure",
    "new_breaker",
    "remediation_window_start",
    "shared_session",
    "token_fingerprint",
]

SCOPE: Final = "vanta-api.all:read"
# Listed in vulnstats.metrics.SYNC_METRICS (a unit test keeps them equal).
PAGES_FETCHED: Final = "PagesFetched"
_DEFAULT_EXPIRES_IN: Final = 3599.0
_PATHS: Final[Mapping[Entity, str]] = {
    "vulnerabilities": "/vulnerabilities",
    "remediations": "/vulnerability-remediations",
    "assets": "/vulnerable-assets",
}
# A full sync must see findings without an SLA, which the endpoint leaves out by default.
_FIXED_PARAMS: Final[Mapping[Entity, Mapping[str, str]]] = {
    "vulnerabilities": {"includeVulnerabilitiesWithoutSlas": "true"},
    "remediations": {},
    "assets": {},
}

_LOG: Final = logging.getLogger(__name__)


# ----- the client -----


class _UnauthorizedError(VantaError):
    """A 401 answer; handled inside the client, never raised to callers."""

    def __init__(self, body: str) -> None:
        self.body = body
        super().__init__("HTTP 401")


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float

    def __repr__(self) -> str:
        return f"_Token(fingerprint={token_fingerprint(self.value)})"


@dataclass(slots=True)
class _PageRequest:
    """Mutable state of one page request across its attempts."""

    page_size: int
    reauthed: bool = False


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientUpstreamError)


def _retry_after_of(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, TransientUpstreamError) else None


def is_breaker_failure(exc: BaseException) -> bool:
    """Whether a failure counts towards opening the circuit: 5xx, 408, timeouts, broken
    connections and cut bodies. A 429 says the upstream is alive and busy: retried, not counted."""
    return isinstance(exc, TransientUpstreamError) and exc.is_server_failure


def new_breaker(
    config: VantaClientConfig | None = None,
    *,
    name: str = "vanta-api",
    clock: Callable[[], float] = time.monotonic,
    metrics: MetricSink | None = None,
    logger: StructuredLogger | None = None,
) -> CircuitBreaker:
    """A fresh breaker with the client's policy (tests, or a caller that manages its own).

    Without an explicit breaker the client uses the execution environment's one, named
    ``vanta-api``, so an upstream outage seen by one invocation is remembered by the next.
    """
    cfg = config if config is not None else VantaClientConfig()
    return CircuitBreaker(
        name,
        failure_threshold=cfg.breaker_failure_threshold,
        reset_timeout=cfg.breaker_reset_timeout,
        counts=is_breaker_failure,
        clock=clock,
        metrics=metrics,
        logger=logger,
    )


class VantaClient:
    """Reads the Vanta vulnerability endpoints for one sync run.

    One instance per run (it holds the run's token; not thread-safe); the HTTP session and the
    circuit breaker are per execution environment. Every collaborator is injectable: the
    credentials provider, the session, ``clock`` (monotonic) and ``wall_clock`` (epoch seconds,
    for HTTP-date ``Retry-After``), ``sleep``, the run's ``deadline`` (or ``remaining_ms``, e.g.
    ``context.get_remaining_time_in_millis``), the metric sink, the breaker, the page-rate
    limiter and the jitter source.

    Errors (all ``VantaError``): ``AuthError``; ``VantaHTTPError`` for other 4xx;
    ``DeadlineExceededError`` when the next call could not finish in time (checkpoint and
    continue in a new invocation); ``RetriesExhaustedError``; ``UpstreamCircuitOpenError``;
    ``UpstreamProtocolError`` for answers that break the contract.
    """

    def __init__(
        self,
        credentials: CredentialsProvider,
        *,
        config: VantaClientConfig | None = None,
        session: HttpSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        deadline: Deadline | None = None,
        remaining_ms: Callable[[], int] | None = None,
        metrics: MetricSink | None = None,
        breaker: CircuitBreaker | None = None,
        rate_limiter: PageRateLimiter | None = None,
        random_fn: Callable[[], float] | None = None,
        logger: StructuredLogger | None = None,
    ) -> None:
        """Wire the collaborators; no I/O, no import, no session or token yet.

        ``remaining_ms`` is read once, here, to fix the deadline on ``clock``; every call then
        keeps ``config.safety_margin`` seconds free before that deadline.
        """
        if deadline is not None and remaining_ms is not None:
            raise ValueError("pass deadline or remaining_ms, not both")
        cfg = config if config is not None else VantaClientConfig()
        self.config = cfg
        self._credentials = credentials
        self._session = session
        self._clock = clock
        self._wall_clock = wall_clock
        if remaining_ms is not None:
            deadline = Deadline(clock() + remaining_ms() / 1000.0, clock=clock)
        self.deadline = deadline
        self._metrics: MetricSink = metrics if metrics is not None else NullMetricSink()
        self._logger: StructuredLogger = logger if logger is not None else _LOG
        self._breaker = (
            breaker
            if breaker is not None
            else get_breaker(
                "vanta-api",
                failure_threshold=cfg.breaker_failure_threshold,
                reset_timeout=cfg.breaker_reset_timeout,
                counts=is_breaker_failure,
                clock=clock,
                metrics=self._metrics,
                logger=self._logger,
            )
        )
        self._limiter = (
            rate_limiter
            if rate_limiter is not None
            else PageRateLimiter(cfg.pages_per_minute, clock=clock, sleep=sleep)
        )
        self._retrier = Retrier(
            retryable=_is_transient,
            retry_after=_retry_after_of,
            max_attempts=cfg.max_attempts,
            base_delay=cfg.base_delay,
            max_delay=cfg.max_delay,
            max_wait=cfg.max_retry_after,
            min_attempt_time=cfg.safety_margin + cfg.min_call_time,
            sleep=sleep,
            random_fn=random_fn,
            metrics=self._metrics,
            logger=self._logger,
            name="vanta",
        )
        self._token: _Token | None = None
        self._credentials_refreshed = False
        self.stats = ClientStats()

    # ----- listings -----

    def iter_vulnerabilities(
        self,
        start_cursor: str | None = None,
        *,
        page_size: int | None = None,
        first_page_number: int = 1,
        filters: Mapping[str, str] | None = None,
    ) -> Iterator[Page]:
        """Pages of ``GET /v1/vulnerabilities``, findings without an SLA included.

        Resumes after ``start_cursor`` (a checkpointed ``end_cursor``); ``filters`` adds query
        parameters. Pages are yielded one at a time and never kept.
        """
        params = dict(filters or {})
        return self._iterate("vulnerabilities", params, start_cursor, page_size, first_page_number)

    def iter_remediations(
        self,
        remediated_after: datetime | None,
        start_cursor: str | None = None,
        *,
        page_size: int | None = None,
        first_page_number: int = 1,
        filters: Mapping[str, str] | None = None,
    ) -> Iterator[Page]:
        """Pages of ``GET /v1/vulnerability-remediations`` remediated at or after
        ``remediated_after`` (None: all); see :func:`remediation_window_start` for the overlap.

        A cursor belongs to its query: resume with the ``remediated_after`` of the run that
        checkpointed it.
        """
        params = dict(filters or {})
        if remediated_after is not None:
            params["remediatedAfterDate"] = format_rfc3339(remediated_after)
        return self._iterate("remediations", params, start_cursor, page_size, first_page_number)

    def iter_assets(
        self,
        start_cursor: str | None = None,
        *,
        page_size: int | None = None,
        first_page_number: int = 1,
        filters: Mapping[str, str] | None = None,
    ) -> Iterator[Page]:
        """Pages of ``GET /v1/vulnerable-assets``, resuming after ``start_cursor``."""
        params = dict(filters or {})
        return self._iterate("assets", params, start_cursor, page_size, first_page_number)

    def _iterate(
        self,
        entity: Entity,
        params: dict[str, str],
        cursor: str | None,
        page_size: int | None,
        number: int,
    ) -> Iterator[Page]:
        size = self.config.page_size if page_size is None else page_size
        while True:
            page = self.fetch_page(entity, cursor, page_size=size, number=number, params=params)
            yield page
            if not page.has_next:
                return
            if page.end_cursor is None or page.end_cursor == cursor:
                raise UpstreamProtocolError(
                    f"{entity} page {number}: hasNextPage without a new endCursor"
                )
            cursor = page.end_cursor
            number += 1

    def fetch_page(
        self,
        entity: Entity,
        cursor: str | None,
        *,
        page_size: int | None = None,
        number: int = 1,
        params: Mapping[str, str] | None = None,
    ) -> Page:
        """One page of ``entity`` after ``cursor``, with retries, re-auth and page halving.

        ``params`` are extra query parameters; ``/vulnerabilities`` always gets
        ``includeVulnerabilitiesWithoutSlas=true``. ``number`` only labels the page.
        """
        size = self.config.page_size if page_size is None else page_size
        if not 1 <= size <= API_PAGE_SIZE_MAX:
            raise ValueError(f"page_size must be within 1..100, got {size}")
        state = _PageRequest(page_size=size)
        url_base = f"{self.config.root}/v1{_PATHS[entity]}"

        def attempt() -> Page:
            query = {**(params or {}), **_FIXED_PARAMS[entity]}
            query["pageSize"] = str(state.page_size)
            if cursor is not None:
                query["pageCursor"] = cursor
            url = f"{url_base}?{urlencode(query)}"
            try:
                raw, body = self._authorised_get(url, state)
            except TransientUpstreamError as exc:
                self._maybe_halve(entity, number, state, exc)
                raise
            return self._page(entity, number, cursor, size=state.page_size, raw=raw, body=body)

        page = self._with_retries(attempt)
        self.stats.pages += 1
        self._metrics.add(PAGES_FETCHED, 1.0)
        # Context for a run that fails later: held in the log buffer, written only on an error.
        self._logger.debug(
            "vanta page fetched",
            extra={
                "entity": entity,
                "page": number,
                "records": len(page.records),
                "bytes": len(page.raw),
            },
        )
        return page

    def _maybe_halve(
        self, entity: Entity, number: int, state: _PageRequest, exc: TransientUpstreamError
    ) -> None:
        status = exc.status
        if status is None or status < 500 or state.page_size <= self.config.min_page_size:
            return
        smaller = max(self.config.min_page_size, state.page_size // 2)
        self._logger.warning(
            "halving page size after a server error",
            extra={
                "entity": entity,
                "page": number,
                "status": status,
                "from_page_size": state.page_size,
                "to_page_size": smaller,
            },
        )
        state.page_size = smaller
        self.stats.page_size_halvings += 1

    @staticmethod
    def _page(
        entity: Entity, number: int, cursor: str | None, *, size: int, raw: bytes, body: Any
    ) -> Page:
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, dict):
            raise UpstreamProtocolError(f"{entity} page {number}: no 'results' object")
        data = results.get("data")
        if not isinstance(data, list):
            raise UpstreamProtocolError(f"{entity} page {number}: 'results.data' is not a list")
        info = results.get("pageInfo")
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise UpstreamProtocolError(f"{entity} page {number}: 'pageInfo' is not an object")
        end_cursor = info.get("endCursor")
        if end_cursor is not None and not isinstance(end_cursor, str):
            raise UpstreamProtocolError(f"{entity} page {number}: endCursor is not a string")
        has_next = info.get("hasNextPage")
        if not isinstance(has_next, bool):
            # Tolerated: without the flag, a page that names where to go on has more.
            has_next = bool(end_cursor) and bool(data)
        return Page(
            entity=entity,
            number=number,
            cursor=cursor,
            end_cursor=end_cursor,
            has_next=has_next,
            page_size=size,
            records=data,
            raw=raw,
        )

    # ----- authentication -----

    def _authorised_get(self, url: str, state: _PageRequest) -> tuple[bytes, Any]:
        token = self._valid_token()
        try:
            return self._http("GET", url, token=token)
        except _UnauthorizedError as first:
            if state.reauthed:
                raise AuthError(
                    "401 again after a new token", status=401, body=first.body
                ) from None
        # The token was revoked (another mint, e.g. a second run) or expired early: mint one
        # new token and repeat this call once.
        state.reauthed = True
        self.stats.token_reauths += 1
        self._logger.warning("token rejected; minting a new one", extra={"url": _path(url)})
        token = self._mint()
        try:
            return self._http("GET", url, token=token)
        except _UnauthorizedError as second:
            raise AuthError("401 again after a new token", status=401, body=second.body) from None

    def _valid_token(self) -> str:
        token = self._token
        if token is None or self._clock() >= token.refresh_at:
            return self._mint()
        return token.value

    def _mint(self) -> str:
        issued_at = self._clock()
        try:
            body = self._post_token()
        except _UnauthorizedError as first:
            if self._credentials_refreshed:
                raise AuthError(
                    "token endpoint rejected the client credentials", status=401, body=first.body
                ) from None
            # The secret may have been rotated since it was read: re-read it once per run.
            self._credentials_refreshed = True
            self.stats.credential_refreshes += 1
            self._logger.warning("client credentials rejected; re-reading them", extra={})
            self._credentials.refresh()
            try:
                body = self._post_token()
            except _UnauthorizedError as second:
                raise AuthError(
                    "token endpoint rejected the client credentials", status=401, body=second.body
                ) from None
        value = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise UpstreamProtocolError("token answer without an access_token")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            expires_in = _DEFAULT_EXPIRES_IN
        lifetime = max(0.0, float(expires_in))
        # Refresh ahead of expiry, but never so early that every call would mint.
        ahead = min(self.config.token_refresh_margin, lifetime / 2)
        self._token = _Token(value, issued_at + lifetime - ahead)
        self.stats.tokens_minted += 1
        self._logger.info(
            "vanta token minted",
            extra={"token_fingerprint": token_fingerprint(value), "expires_in": lifetime},
        )
        return value

    def _post_token(self) -> Any:
        client_id, client_secret = self._credentials()
        payload = {
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": SCOPE,
            "grant_type": "client_credentials",
        }
        try:
            _, body = self._http("POST", f"{self.config.root}/oauth/token", json_body=payload)
        except VantaHTTPError as exc:
            raise AuthError("token request refused", status=exc.status, body=exc.body) from None
        return body

    # ----- one HTTP exchange -----

    def _with_retries[R](self, fn: Callable[[], R]) -> R:
        try:
            return self._retrier.call_until(self.deadline, fn)
        except RetryError as exc:
            last = exc.last_exception
            if exc.reason == "deadline":
                raise DeadlineExceededError(
                    self._remaining(), self.config.safety_margin + self.config.min_call_time
                ) from last
            raise RetriesExhaustedError(exc.reason, exc.attempts, last) from last

    def _remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline.remaining()

    def _timeout(self, wait: float = 0.0) -> float:
        """The read timeout for a call starting after ``wait`` seconds, or DeadlineExceeded."""
        cfg = self.config
        if self.deadline is None:
            return cfg.read_timeout
        remaining = self.deadline.remaining()
        available = remaining - cfg.safety_margin - wait
        if available < cfg.min_call_time:
            raise DeadlineExceededError(remaining, cfg.safety_margin + wait + cfg.min_call_time)
        return min(cfg.read_timeout, available)

    def _http(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        json_body: Mapping[str, str] | None = None,
    ) -> tuple[bytes, Any]:
        # An open breaker refuses the call below without sending it: no rate-limit slot needed.
        if method == "GET" and self._breaker.state != "open":
            self._timeout(self._limiter.delay())
            self.stats.rate_limit_wait_seconds += self._limiter.acquire()
        read_timeout = self._timeout()
        timeout = (min(self.config.connect_timeout, read_timeout), read_timeout)
        headers = {"Accept": "application/json", "User-Agent": self.config.user_agent}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self.stats.requests += 1
        try:
            return self._breaker.call(self._exchange, method, url, headers, json_body, timeout)
        except CircuitOpenError as exc:
            raise UpstreamCircuitOpenError(exc.name, exc.retry_in) from exc.__cause__

    def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json_body: Mapping[str, str] | None,
        timeout: tuple[float, float],
    ) -> tuple[bytes, Any]:
        path = _path(url)
        session = self._session
        if session is None:
            session = self._session = shared_session()
        try:
            response = session.request(
                method, url, headers=headers, json=json_body, timeout=timeout
            )
            status = response.status_code
            raw = response.content
        except requests.exceptions.Timeout as exc:
            raise TransientUpstreamError(f"timeout calling {path}", url=path) from exc
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise TransientUpstreamError(
                f"connection failed calling {path}: {type(exc).__name__}", url=path
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise VantaError(f"request to {path} failed: {type(exc).__name__}") from exc
        if 200 <= status < 300:
            try:
                return raw, json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                # The stand-in's "truncated" fault, or a proxy cutting a body: worth a retry.
                raise TransientUpstreamError(
                    f"invalid JSON body from {path} ({len(raw)} bytes)", status=status, url=path
                ) from exc
        body = truncate_body(raw, self.config.error_body_limit)
        if status == 401:
            raise _UnauthorizedError(body)
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), now=self._wall_clock
            )
            raise TransientUpstreamError(
                f"HTTP {status} from {path}",
                status=status,
                retry_after=retry_after,
                body=body,
                url=path,
            )
        raise VantaHTTPError(status, body, url=path)


def _path(url: str) -> str:
    """The URL's path, for logs and errors (queries carry cursors, never secrets, but are long)."""
    return urlsplit(url).path
