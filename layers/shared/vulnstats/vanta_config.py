"""What the Vanta client is given and gives back: ports, the pooled session, config, values."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

from lambdakit.lazy import lazy_import

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import requests
    import requests.adapters

    from vulnstats.models import Entity
else:
    # requests costs tens of milliseconds to import: only the sync function, on its first
    # call, pays for it; modules that import vulnstats.models never do.
    requests = lazy_import("requests.adapters")

__all__ = [
    "API_PAGE_SIZE_MAX",
    "DEFAULT_BASE_URL",
    "DEFAULT_REMEDIATION_OVERLAP",
    "ClientStats",
    "CredentialsProvider",
    "HttpResponse",
    "HttpSession",
    "Page",
    "PageRateLimiter",
    "StaticCredentials",
    "StructuredLogger",
    "VantaClientConfig",
    "clear_shared_session",
    "format_rfc3339",
    "remediation_window_start",
    "shared_session",
    "token_fingerprint",
]

DEFAULT_BASE_URL: Final = "https://api.vanta.com"
DEFAULT_REMEDIATION_OVERLAP: Final = timedelta(hours=24)
API_PAGE_SIZE_MAX: Final = 100  # the largest pageSize Vanta's list endpoints accept


# ----- ports -----


class CredentialsProvider(Protocol):
    """Where the OAuth client id and secret come from (a Secrets Manager adapter in Lambda)."""

    def __call__(self) -> tuple[str, str]:
        """The current ``(client_id, client_secret)``; may be cached by the provider."""
        ...

    def refresh(self) -> None:
        """Drop any cached value so the next call re-reads the source (after a rotation)."""
        ...


class StaticCredentials:
    """Fixed credentials: tests and local runs. ``refreshes`` counts calls to :meth:`refresh`."""

    __slots__ = ("_client_id", "_client_secret", "refreshes")

    def __init__(self, client_id: str, client_secret: str) -> None:
        """Keep the pair; its ``repr`` never shows the secret."""
        self._client_id = client_id
        self._client_secret = client_secret
        self.refreshes = 0

    def __call__(self) -> tuple[str, str]:
        """Return the pair."""
        return self._client_id, self._client_secret

    def refresh(self) -> None:
        """Nothing to re-read; counted so tests can see the client asked."""
        self.refreshes += 1

    def __repr__(self) -> str:
        """Name the client id only."""
        return f"StaticCredentials(client_id={self._client_id!r}, client_secret=<hidden>)"


class HttpResponse(Protocol):
    """The part of ``requests.Response`` the client reads."""

    @property
    def status_code(self) -> int:
        """HTTP status."""
        ...

    @property
    def content(self) -> bytes:
        """The whole body."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers (case-insensitive in requests)."""
        ...


class HttpSession(Protocol):
    """The part of ``requests.Session`` the client calls; fakes implement just this."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: tuple[float, float] | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole answer."""
        ...


class StructuredLogger(Protocol):
    """A ``logging.Logger`` or a Powertools ``Logger``: messages with structured ``extra``."""

    def debug(self, msg: object, *args: object, extra: Mapping[str, object] | None = None) -> None:
        """Log at debug level."""
        ...

    def info(self, msg: object, *args: object, extra: Mapping[str, object] | None = None) -> None:
        """Log at info level."""
        ...

    def warning(
        self, msg: object, *args: object, extra: Mapping[str, object] | None = None
    ) -> None:
        """Log at warning level."""
        ...


# ----- the environment's pooled session -----

_session_lock = threading.Lock()
_shared: requests.Session | None = None


def shared_session(pool_maxsize: int = 4) -> requests.Session:
    """The execution environment's pooled ``requests.Session``, created on first use.

    Connections (and TLS sessions) are kept across invocations. requests' own retries are off:
    the client's retry policy is the only one. ``pool_maxsize`` applies to the first call only.
    """
    global _shared  # noqa: PLW0603 - one session per execution environment, on purpose
    session = _shared
    if session is None:
        with _session_lock:
            session = _shared
            if session is None:
                session = requests.Session()
                adapter = requests.adapters.HTTPAdapter(
                    pool_connections=2, pool_maxsize=pool_maxsize, max_retries=0
                )
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                _shared = session
    return session


def clear_shared_session() -> None:
    """Close and forget the shared session (tests)."""
    global _shared  # noqa: PLW0603 - see shared_session
    with _session_lock:
        if _shared is not None:
            _shared.close()
        _shared = None


# ----- configuration and values -----


@dataclass(frozen=True, slots=True)
class VantaClientConfig:
    """Client policy; built by the sync function's settings module, validated here.

    Times are seconds. ``safety_margin`` is kept free after the last call for the caller to
    save its checkpoint; no call starts with less than ``min_call_time`` of timeout available.
    ``pages_per_minute`` spaces list requests (None: no spacing); ``max_retry_after`` is the
    longest ``Retry-After`` the client waits before giving up.
    """

    base_url: str = DEFAULT_BASE_URL
    page_size: int = 100
    min_page_size: int = 10
    connect_timeout: float = 3.05
    read_timeout: float = 30.0
    safety_margin: float = 1.0
    min_call_time: float = 1.0
    pages_per_minute: float | None = 50.0
    token_refresh_margin: float = 60.0
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 120.0
    breaker_failure_threshold: int = 5
    breaker_reset_timeout: float = 60.0
    error_body_limit: int = 2048
    user_agent: str = "vulnstats-sync/0.1"

    def __post_init__(self) -> None:
        """Reject values that would make the client misbehave rather than fail early."""
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if not 1 <= self.min_page_size <= self.page_size <= API_PAGE_SIZE_MAX:
            raise ValueError("need 1 <= min_page_size <= page_size <= 100")
        if min(self.connect_timeout, self.read_timeout, self.min_call_time) <= 0:
            raise ValueError("timeouts and min_call_time must be positive")
        if self.safety_margin < 0 or self.token_refresh_margin < 0:
            raise ValueError("margins must not be negative")
        if self.pages_per_minute is not None and self.pages_per_minute <= 0:
            raise ValueError("pages_per_minute must be positive (None: unlimited)")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    @property
    def root(self) -> str:
        """The base URL without a trailing slash or ``/v1``."""
        root = self.base_url.rstrip("/")
        return root.removesuffix("/v1")


@dataclass(frozen=True, slots=True)
class Page:
    """One fetched page of a listing, as the caller archives and checkpoints it.

    ``raw`` is the body exactly as received (archive it); ``records`` the raw records of
    ``results.data`` (validate each with ``vulnstats.models``); ``cursor`` the ``pageCursor``
    sent (None for the first page); ``end_cursor`` where the next page starts, the value to
    checkpoint once the page is stored; ``page_size`` the size actually used (smaller than
    asked after a 5xx on a large page).
    """

    entity: Entity
    number: int
    cursor: str | None
    end_cursor: str | None
    has_next: bool
    page_size: int
    records: list[Any]
    raw: bytes


@dataclass(slots=True)
class ClientStats:
    """What the client did during this run (for the run record and tests)."""

    requests: int = 0
    pages: int = 0
    tokens_minted: int = 0
    token_reauths: int = 0
    credential_refreshes: int = 0
    page_size_halvings: int = 0
    rate_limit_wait_seconds: float = 0.0


class PageRateLimiter:
    """Keeps at least ``60 / pages_per_minute`` seconds between page requests on ``clock``."""

    def __init__(
        self,
        pages_per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``None`` disables spacing."""
        self.interval = 0.0 if not pages_per_minute else 60.0 / pages_per_minute
        self.clock = clock
        self.sleep = sleep
        self._last: float | None = None

    def delay(self) -> float:
        """Seconds to wait before the next request may start."""
        if self._last is None or self.interval <= 0:
            return 0.0
        return max(0.0, self._last + self.interval - self.clock())

    def acquire(self) -> float:
        """Wait until the next request may start, then claim the slot; returns the wait."""
        wait = self.delay()
        if wait > 0:
            self.sleep(wait)
        self._last = self.clock()
        return wait


def token_fingerprint(token: str) -> str:
    """A short, non-reversible tag of a token, the only form of it that may be logged."""
    return hashlib.blake2b(token.encode(), digest_size=6).hexdigest()


def format_rfc3339(moment: datetime) -> str:
    """``2024-04-01T00:00:00.000Z`` for an aware datetime (naive ones are refused)."""
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def remediation_window_start(
    last_complete_run_started: datetime | None,
    overlap: timedelta = DEFAULT_REMEDIATION_OVERLAP,
) -> datetime | None:
    """``remediatedAfterDate`` for an incremental run: the last complete run's start minus
    ``overlap`` (late-indexed remediations are picked up; duplicates are the caller's to
    merge by id). None (a full listing) when there was no complete run."""
    if last_complete_run_started is None:
        return None
    if overlap < timedelta(0):
        raise ValueError("overlap must not be negative")
    return last_complete_run_started - overlap
