"""A small signed client for AWS JSON-protocol APIs over one kept-alive standard-library connection.

Why: for a read-only function, botocore's import, client creation and first call (service model,
endpoint ruleset) are most of the cold start, yet a JSON-protocol call is only a POST of a JSON
body signed with SigV4. This module does exactly that and no more, and each choice follows what
botocore does, so the two are interchangeable (tests prove it with botocore as the oracle):

- Credentials (``LambdaCredentials``): ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
  ``AWS_SESSION_TOKEN``, which Lambda sets for the execution role; else the container credentials
  endpoint (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` or
  ``..._TOKEN_FILE``), which is how Lambda hands credentials to SnapStart functions (AWS Lambda
  Developer Guide, "Activating and managing Lambda SnapStart", section "Using SnapStart with AWS
  SDKs"; AWS SDKs and Tools Reference Guide, "Container credential provider"). Same order as
  botocore's chain; no profile files or instance metadata, which Lambda does not use.
- Endpoint (``resolve_endpoint``): ``AWS_ENDPOINT_URL_<SERVICE>``, then ``AWS_ENDPOINT_URL``
  (both skipped when ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true), else
  ``https://<service>.<region>.<partition suffix>``; the region is ``AWS_DEFAULT_REGION``, the
  variable botocore reads (Lambda sets it). FIPS and dual-stack endpoints are refused by name.
- Signing (``sign``): SigV4 over the headers botocore signs for these requests (content-type,
  host, x-amz-date, x-amz-security-token, x-amz-target), the payload always hashed.
- Body: ``json.dumps`` with default separators and the caller's key order, botocore's bytes.
- Retries (``AwsJsonClient.call``): botocore's standard mode (3 attempts; throttling codes,
  transient codes, HTTP 500/502/503/504 and connection failures or timeouts retried; full-jitter
  backoff of 1 s x 2^n for throttling and ``transient_base`` x 2^n otherwise, capped at 20 s;
  ``x-amz-retry-after`` honoured), driven by lambdakit's ``Retrier`` so that no wait ends past
  the invocation's deadline. Not kept: botocore's retry quota (a token bucket that only bites in
  a long outage of one long-lived process).
- Transport: one ``http.client`` connection, opened on first use and kept alive; a failed call
  drops it and the retry reconnects. The connect timeout covers TCP and TLS set-up, the read
  timeout every later socket read, so nothing waits unbounded.

Scope, on purpose: ``POST /`` with a JSON body (awsJson1_0 / awsJson1_1), answers read whole. For
anything else use botocore (``lambdakit.clients``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from lambdakit.errors import LambdaKitError
from lambdakit.lazy import lazy_import
from lambdakit.retry import Retrier, RetryError

if TYPE_CHECKING:
    import http.client
    import ssl
    from collections.abc import Callable, Mapping

    from lambdakit.retry import Deadline
else:
    # http.client pulls in email parsing (a few ms): only a function that calls pays for it.
    http = lazy_import("http.client")
    ssl = lazy_import("ssl")

__all__ = [
    "AwsJsonClient",
    "AwsServiceError",
    "AwsTransportError",
    "ConfigurationError",
    "Credentials",
    "LambdaCredentials",
    "resolve_endpoint",
    "sign",
]

# botocore/retries/standard.py: the codes and statuses its standard mode retries.
THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES: Final = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"}
)
TRANSIENT_STATUSES: Final = frozenset({500, 502, 503, 504})
_MAX_BACKOFF: Final = 20.0
_RETRY_AFTER_EXTRA: Final = 5.0  # botocore waits at most this much beyond its own backoff
# Container credentials are fetched again this long before they expire (botocore's advisory
# refresh window is 15 minutes; Lambda's credentials live for hours).
_REFRESH_MARGIN: Final = 15 * 60.0
_SIGV4_TIME: Final = "%Y%m%dT%H%M%SZ"
# botocore's ensure_boolean: only "true" (any case) is true; "1" or "yes" are not.
_TRUE: Final = frozenset({"true"})
# Partitions whose DNS suffix is not amazonaws.com (botocore's partitions.json); every other
# region name resolves in the aws partition, as botocore's ruleset does.
_SUFFIXES: Final = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
)


class ConfigurationError(LambdaKitError):
    """The environment does not say how to reach or sign for the service (names the variable)."""


class AwsServiceError(LambdaKitError):
    """The service answered with an error (``code`` from the body, else the HTTP status)."""

    def __init__(self, operation: str, status: int, code: str, message: str) -> None:
        """Keep the operation, status, code and message; str() reads like botocore's."""
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.attempt = 1
        self.retry_after: float | None = None
        super().__init__(
            f"An error occurred ({code}) when calling the {operation} operation: {message}"
        )

    @property
    def throttling(self) -> bool:
        """Whether the code is one of the throttling codes botocore retries."""
        return self.code in THROTTLING_CODES

    @property
    def retryable(self) -> bool:
        """Whether botocore's standard retry mode would retry this answer."""
        return self.throttling or self.code in TRANSIENT_CODES or self.status in TRANSIENT_STATUSES


class AwsTransportError(LambdaKitError):
    """No usable answer: connection failure, timeout (``retryable``) or a malformed answer."""

    def __init__(self, operation: str, reason: str, *, retryable: bool) -> None:
        """Name the operation and what went wrong."""
        self.operation = operation
        self.retryable = retryable
        self.attempt = 1
        super().__init__(f"{operation}: {reason}")


@dataclass(frozen=True, slots=True)
class Credentials:
    """One set of AWS credentials; ``expires_at`` in epoch seconds (None: does not expire)."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    expires_at: float | None = None


class LambdaCredentials:
    """Lambda's credentials: the environment variables, else the container endpoint (SnapStart).

    Read on first use and kept; container credentials are fetched again shortly before they
    expire. ``reset`` forgets them (after a SnapStart restore). ``environ`` defaults to
    ``os.environ`` read at each load, as botocore does.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Set where credentials come from; nothing is read yet."""
        self._environ = environ
        self._timeout = timeout
        self._clock = clock
        self._cached: Credentials | None = None

    def get(self) -> Credentials:
        """The current credentials; raises ``ConfigurationError`` when there are none."""
        cached = self._cached
        if cached is not None and (
            cached.expires_at is None or cached.expires_at - self._clock() > _REFRESH_MARGIN
        ):
            return cached
        self._cached = self._load()
        return self._cached

    def reset(self) -> None:
        """Forget the credentials; the next call reads them again."""
        self._cached = None

    def _load(self) -> Credentials:
        environ = os.environ if self._environ is None else self._environ
        key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN") or None)
        uri = environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        if uri:
            token = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
            token_file = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
            if token_file:
                token = _read_token(token_file)
            return self._fetch(uri, token)
        raise ConfigurationError(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Lambda sets "
            "them) or AWS_CONTAINER_CREDENTIALS_FULL_URI (Lambda's SnapStart does)"
        )

    def _fetch(self, uri: str, token: str | None) -> Credentials:
        """GET the container endpoint: up to 3 tries of ``timeout`` each (as botocore)."""
        scheme, host, port, path = _split_url(uri, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = token
        problem = ""
        for _ in range(3):
            conn = _connection(scheme, host, port, self._timeout)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            finally:
                conn.close()
            if response.status != 200:
                problem = f"HTTP {response.status}: {body[:200]!r}"
                continue
            return _parse_credentials(body)
        raise ConfigurationError(f"container credentials from {uri}: {problem}")


def _read_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ConfigurationError(f"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: {exc}") from exc


def _parse_credentials(body: bytes) -> Credentials:
    try:
        data = json.loads(body)
        expiration = data.get("Expiration")
        expires_at = None
        if expiration:
            from datetime import datetime  # noqa: PLC0415 - SnapStart functions only

            expires_at = datetime.fromisoformat(expiration).timestamp()
        return Credentials(
            str(data["AccessKeyId"]), str(data["SecretAccessKey"]), data.get("Token"), expires_at
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"container credentials: malformed answer ({exc!r})") from exc


# ----- endpoint -----


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests go and the region they are signed for."""

    scheme: str
    host: str
    port: int | None
    path: str
    region: str

    @property
    def host_header(self) -> str:
        """The Host value: the port only when it is not the scheme's default (as botocore)."""
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port in (None, default) else f"{self.host}:{self.port}"


def _split_url(url: str, name: str) -> tuple[str, str, int | None, str]:
    from urllib.parse import urlsplit  # noqa: PLC0415 - once per client

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"{name}: {url!r} is not a URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name}: {url!r} is not an http(s) URL")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


def resolve_endpoint(service: str, environ: Mapping[str, str] | None = None) -> Endpoint:
    """The endpoint and signing region of ``service`` (its botocore service id, e.g. "dynamodb").

    Raises ``ConfigurationError`` naming the variable that is missing or wrong.
    """
    env = os.environ if environ is None else environ
    region = env.get("AWS_DEFAULT_REGION", "").strip()
    if not region:
        raise ConfigurationError("AWS_DEFAULT_REGION: missing (Lambda sets it)")
    for flag in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"):
        if env.get(flag, "").strip().lower() in _TRUE:
            raise ConfigurationError(f"{flag}: not supported by this client; use botocore's")
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() not in _TRUE:
        for name in (f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}", "AWS_ENDPOINT_URL"):
            url = env.get(name, "").strip()
            if url:
                scheme, host, port, path = _split_url(url, name)
                if "?" in path:  # it would have to be signed as a canonical query string
                    raise ConfigurationError(f"{name}: a query string is not supported ({url!r})")
                return Endpoint(scheme, host, port, path, region)
    suffix = next((s for prefix, s in _SUFFIXES if region.startswith(prefix)), "amazonaws.com")
    return Endpoint("https", f"{service}.{region}.{suffix}", None, "/", region)


# ----- signing -----


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
) -> str:
    """The SigV4 ``Authorization`` value of a request whose ``headers`` are all to be signed.

    ``headers`` must hold ``Host`` and ``X-Amz-Date`` (and ``X-Amz-Security-Token`` with a
    session token); the request has no query string. See the AWS General Reference, "Create a
    signed AWS API request".
    """
    canonical = sorted((name.lower(), " ".join(value.split())) for name, value in headers.items())
    signed = ";".join(name for name, _ in canonical)
    amz_date = next(value for name, value in canonical if name == "x-amz-date")
    from urllib.parse import quote  # noqa: PLC0415 - cached by the first import

    request = "\n".join(
        (
            method,
            quote(path.partition("?")[0], safe="/~"),
            "",
            *(f"{name}:{value}" for name, value in canonical),
            "",
            signed,
            hashlib.sha256(body).hexdigest(),
        )
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest())
    )
    key = _hmac(f"AWS4{credentials.secret_key}".encode(), amz_date[:8])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


def _invocation_id() -> str:
    """A random UUID (version 4) string, without importing uuid."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _connection(
    scheme: str, host: str, port: int | None, timeout: float
) -> http.client.HTTPConnection:
    if scheme == "https":
        # Certificates are loaded once per connection, i.e. once per environment.
        return http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(host, port, timeout=timeout)


# ----- the client -----


class AwsJsonClient:
    """Signed JSON-protocol calls to one service over one kept-alive connection.

    ``target_prefix`` and ``json_version`` come from the service's model (DynamoDB:
    ``"DynamoDB_20120810"``, ``"1.0"``). ``deadline`` (set per invocation) bounds retries;
    ``sleep``, ``random_fn`` and ``clock`` (epoch seconds, for X-Amz-Date) are injectable.
    Not thread-safe: one call at a time, as Lambda runs one invocation at a time.
    """

    def __init__(
        self,
        *,
        service: str,
        target_prefix: str,
        json_version: str = "1.0",
        endpoint: Endpoint,
        credentials: LambdaCredentials,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
        transient_base: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        random_fn: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.time,
        user_agent: str = "lambdakit-awsjson/1",
    ) -> None:
        """Configure the client; no connection is opened until the first call."""
        self.service = service
        self.endpoint = endpoint
        self.credentials = credentials
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self.deadline: Deadline | None = None
        self._target = target_prefix
        self._content_type = f"application/x-amz-json-{json_version}"
        self._clock = clock
        self._user_agent = user_agent
        self._conn: http.client.HTTPConnection | None = None
        self._retrier = Retrier(
            retryable=lambda exc: bool(getattr(exc, "retryable", False)),
            max_attempts=max_attempts,
            base_delay=transient_base,
            max_delay=_MAX_BACKOFF,
            max_wait=_MAX_BACKOFF + _RETRY_AFTER_EXTRA,
            retry_after=self._throttle_wait,
            sleep=sleep,
            random_fn=random_fn,
            name=f"{service}",
        )
        self._random = self._retrier.random_fn

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Send ``operation`` with ``params``; the parsed answer, or the last error raised
        (``AwsServiceError``, ``AwsTransportError``, ``ConfigurationError``)."""
        body = json.dumps(params).encode()
        invocation = _invocation_id()
        attempts = [0]

        def attempt() -> dict[str, Any]:
            attempts[0] += 1
            return self._send(operation, body, invocation, attempts[0])

        try:
            return self._retrier.call_until(self.deadline, attempt)
        except RetryError as exc:
            raise exc.last_exception from None

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _throttle_wait(self, exc: BaseException) -> float | None:
        """Throttling backs off from 1 s (not ``transient_base``); honour x-amz-retry-after."""
        if not isinstance(exc, AwsServiceError):
            return None
        wait = None
        if exc.throttling:
            wait = self._random() * min(2.0 ** (exc.attempt - 1), _MAX_BACKOFF)
        if exc.retry_after is not None:
            base = wait or 0.0
            wait = max(base, min(exc.retry_after, base + _RETRY_AFTER_EXTRA))
        return wait

    def _connect(self) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and _dropped(conn):
            # The server closed the idle connection (DynamoDB does after a while): reconnect now
            # rather than spend a failed attempt and a retry on it, as urllib3 does.
            self.close()
            conn = None
        if conn is None:
            point = self.endpoint
            conn = _connection(point.scheme, point.host, point.port, self.connect_timeout)
            conn.connect()  # under the connect timeout (TCP and TLS)...
            if conn.sock is not None:
                conn.sock.settimeout(self.read_timeout)  # ...then every read under this one
            self._conn = conn
        return conn

    def _send(self, operation: str, body: bytes, invocation: str, attempt: int) -> dict[str, Any]:
        credentials = self.credentials.get()
        point = self.endpoint
        headers = {
            "Content-Type": self._content_type,
            "Host": point.host_header,
            "X-Amz-Date": time.strftime(_SIGV4_TIME, time.gmtime(self._clock())),
            "X-Amz-Target": f"{self._target}.{operation}",
        }
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        headers["Authorization"] = sign(
            method="POST",
            path=point.path,
            headers=headers,
            body=body,
            credentials=credentials,
            region=point.region,
            service=self.service,
        )
        # Not signed (botocore adds them after signing): retry bookkeeping and our name.
        headers["amz-sdk-invocation-id"] = invocation
        headers["amz-sdk-request"] = (
            "attempt=1" if attempt == 1 else f"attempt={attempt}; max={self.max_attempts}"
        )
        headers["User-Agent"] = self._user_agent
        try:
            conn = self._connect()
            conn.request("POST", point.path, body, headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # the connection's state is unknown: never reuse it
            error = AwsTransportError(
                operation,
                f"no answer from {point.scheme}://{point.host_header} "
                f"({type(exc).__name__}: {exc or 'connection closed'})",
                retryable=True,
            )
            error.attempt = attempt
            raise error from exc
        if response.will_close:
            self.close()
        if response.status < 300:
            return _parse_answer(operation, data)
        raise _service_error(operation, response, data, attempt)


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection was closed by the server (its socket is readable:
    an end of file or a TLS close alert, since no answer is pending)."""
    sock = conn.sock
    if sock is None:
        return True
    import select  # noqa: PLC0415 - a built-in module, loaded by http.client's imports anyway

    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _parse_answer(operation: str, data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data) if data else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise AwsTransportError(
            operation, f"malformed answer (not a JSON object): {data[:200]!r}", retryable=False
        )
    return parsed


def _service_error(
    operation: str, response: http.client.HTTPResponse, data: bytes, attempt: int
) -> AwsServiceError:
    """The error of a non-2xx answer, read as botocore's JSON parser reads it."""
    try:
        body = json.loads(data) if data else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("__type") or "").rpartition("#")[2]
    header = response.getheader("x-amzn-errortype")
    if not code and header:
        code = header.partition(":")[0]
    message = str(body.get("message") or body.get("Message") or response.reason or "")
    error = AwsServiceError(operation, response.status, code or str(response.status), message)
    error.attempt = attempt
    retry_after = response.getheader("x-amz-retry-after")
    if retry_after is not None:
        try:
            error.retry_after = max(0.0, int(retry_after) / 1000.0)
        except ValueError:
            error.retry_after = None
    return error
