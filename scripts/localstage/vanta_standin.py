"""Vanta stand-in: a development and test fixture HTTP server speaking the Vanta API contract."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import logging
import math
import secrets
import signal
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, cast, get_args
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

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

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

FaultKind = Literal[
    "status",
    "token_down",
    "status_over_page_size",
    "latency",
    "malformed",
    "truncated",
    "rate_storm",
    "duplicates",
    "vanish",
    "revoke_token",
]
# The same names, for validating rules that arrive as JSON.
FAULT_KINDS: Final[tuple[str, ...]] = get_args(FaultKind)
# Endpoint names used by fault rules and counters; "*" in a rule means every /v1 endpoint.
ENDPOINTS: Final[tuple[str, ...]] = (
    "token",
    "vulnerabilities",
    "vulnerabilities/{id}",
    "vulnerability-remediations",
    "vulnerable-assets",
    "vulnerable-assets/{id}",
)
_LIST_ENDPOINTS: Final = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
_UNLIMITED_BY_DEFAULT: Final = frozenset({"token_down", "status_over_page_size", "latency"})
_MALFORMED_VARIANTS: Final = ("missing_field", "unknown_severity", "wrong_type")
_WINDOW_SECONDS: Final = 60.0
_DEFAULT_PAGE_SIZE: Final = 10
_MAX_PAGE_SIZE: Final = 100
_DEFAULT_TOKEN_LIMIT: Final = 5
_DEFAULT_EXPIRES_IN: Final = 3599
_TRUE_FALSE: Final = {"true": True, "false": False}


class StandInError(Exception):
    """Base of the stand-in's errors (bad configuration, port in use...)."""


class _HttpError(StandInError):
    """An error answer: status, JSON body, extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Credentials:
    """One OAuth client the stand-in accepts."""

    client_id: str
    client_secret: str


DEFAULT_CREDENTIALS: Final = Credentials("vci_standin_local", "vcs_standin_local_secret")


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One injected fault. A rule counts the requests it matches and fires on numbers
    ``at`` .. ``at + times - 1`` (``times`` None: every matching request from ``at`` on; left at
    0 it takes the kind's default: unlimited for latency, token_down and status_over_page_size,
    else 1).

    kind            what happens                                   fields used
    status          answer ``status`` (5xx) instead of the page     endpoint, at, times, status
    token_down      answer ``status`` on POST /oauth/token           at, times (default: unlimited)
    status_over_page_size  ``status`` when pageSize > max_page_size endpoint, max_page_size, times
    latency         sleep ``seconds`` before answering              endpoint, seconds, at, times
    malformed       first ``count`` records of the page broken      endpoint, at, times, count,
                    (variant missing_field, unknown_severity,       variant
                    wrong_type, or mixed = cycle through them)
    truncated       body cut in half: mode invalid_json (length     endpoint, at, times, mode
                    matches the cut body) or short_read (declared
                    length is the full body, connection closed)
    rate_storm      429, with Retry-After ``retry_after`` unless    endpoint, at, times,
                    it is None                                      retry_after
    duplicates      endCursor points ``count`` records back, so     endpoint, at, times, count
                    the next page repeats them
    vanish          the first ``count`` records of the page are     endpoint, at, times, count
                    left out (deleted upstream while the listing
                    was walked); the cursors are kept
    revoke_token    after ``after`` authorised /v1 requests, every  after
                    active token is revoked (the next call gets 401)
    """

    kind: FaultKind
    endpoint: str = "*"
    at: int = 1
    times: int | None = 0  # 0: the kind's default (see above)
    status: int = 503
    max_page_size: int = 50
    seconds: float = 0.0
    count: int = 1
    variant: str = "mixed"
    mode: Literal["invalid_json", "short_read"] = "invalid_json"
    retry_after: int | None = 1
    after: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise StandInError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.kind == "token_down":
            object.__setattr__(self, "endpoint", "token")
        if self.times == 0:
            object.__setattr__(self, "times", None if self.kind in _UNLIMITED_BY_DEFAULT else 1)
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise StandInError(f"unknown endpoint {self.endpoint!r}; expected * or {ENDPOINTS}")
        if self.at < 1 or (self.times is not None and self.times < 1):
            raise StandInError("at and times must be >= 1 (times null: unlimited)")
        if not 100 <= self.status <= 599:
            raise StandInError(f"status {self.status} is not an HTTP status")
        if self.variant not in (*_MALFORMED_VARIANTS, "mixed"):
            raise StandInError(f"unknown malformed variant {self.variant!r}")
        if self.mode not in ("invalid_json", "short_read"):
            raise StandInError(f"unknown truncation mode {self.mode!r}")
        if self.count < 1 or self.after < 1 or self.max_page_size < 0 or self.seconds < 0:
            raise StandInError("count and after must be >= 1; max_page_size, seconds >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build from JSON (the field names of the dataclass); unknown fields are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise StandInError(f"unknown fault fields: {sorted(unknown)}")
        if "kind" not in data:
            raise StandInError("a fault needs a kind")
        try:
            return cls(**data)
        except TypeError as exc:
            raise StandInError(f"invalid fault {dict(data)}: {exc}") from exc

    def matches(self, endpoint: str, page_size: int) -> bool:
        """Whether a request to this endpoint counts for the rule."""
        if self.kind == "revoke_token":
            return False
        hit = endpoint != "token" if self.endpoint == "*" else endpoint == self.endpoint
        if self.kind == "status_over_page_size":
            return hit and page_size > self.max_page_size
        return hit


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults and limits of one run, replaced as a whole by POST /_admin/faults."""

    rules: tuple[FaultRule, ...] = ()
    rate_limit_per_minute: int = 0  # every /v1 request of one client; 0 = off
    token_rate_limit_per_minute: int = _DEFAULT_TOKEN_LIMIT  # per client_id; 0 = off
    token_expires_in: float = _DEFAULT_EXPIRES_IN

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        """Build from JSON: {"rules": [...], "rate_limit_per_minute": 0, ...}."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise StandInError(f"unknown fault plan fields: {sorted(unknown)}")
        rules = data.get("rules") or []
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise StandInError("rules must be a list of objects")
        try:
            return cls(
                rules=tuple(FaultRule.from_dict(r) for r in rules),
                rate_limit_per_minute=int(data.get("rate_limit_per_minute", 0)),
                token_rate_limit_per_minute=int(
                    data.get("token_rate_limit_per_minute", _DEFAULT_TOKEN_LIMIT)
                ),
                token_expires_in=float(data.get("token_expires_in", _DEFAULT_EXPIRES_IN)),
            )
        except (TypeError, ValueError) as exc:
            raise StandInError(f"invalid fault plan: {exc}") from exc

    def to_dict(self) -> JsonObject:
        """JSON form, as accepted by :meth:`from_dict`."""
        body = asdict(self)
        body["rules"] = [asdict(r) for r in self.rules]
        return body


@dataclass(slots=True)
class _Token:
    client_id: str
    expires_at: float
    revoked: bool = False


@dataclass(slots=True)
class _Stats:
    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)
    items_served: Counter[str] = field(default_factory=Counter)
    faults_fired: Counter[str] = field(default_factory=Counter)
    tokens_minted: int = 0
    tokens_revoked: int = 0
    rate_limited: int = 0
    latency_injected_seconds: float = 0.0
    pages_served: int = 0
    page_cpu_seconds_total: float = 0.0
    page_cpu_seconds_max: float = 0.0

    def to_dict(self) -> JsonObject:
        return {
            "requests": dict(self.requests),
            "responses": dict(self.responses),
            "items_served": dict(self.items_served),
            "faults_fired": dict(self.faults_fired),
            "tokens_minted": self.tokens_minted,
            "tokens_revoked": self.tokens_revoked,
            "rate_limited": self.rate_limited,
            "latency_injected_seconds": self.latency_injected_seconds,
            "pages_served": self.pages_served,
            "page_cpu_seconds_total": self.page_cpu_seconds_total,
            "page_cpu_seconds_max": self.page_cpu_seconds_max,
        }


@dataclass(slots=True)
class _Fired:
    """Faults that apply to one request, decided under the lock."""

    latency: float = 0.0
    error: _HttpError | None = None
    malformed: list[FaultRule] = field(default_factory=list)
    duplicates: int = 0
    vanish: int = 0
    truncate: Literal["invalid_json", "short_read"] | None = None


class _State:
    """Everything mutable, behind one lock: data set, faults, tokens, rate windows, counters."""

    def __init__(
        self,
        dataset: Dataset,
        credentials: Sequence[Credentials],
        plan: FaultPlan,
        clock: Callable[[], float],
    ) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.dataset = dataset
        self.secrets = {c.client_id: c.client_secret for c in credentials}
        self.initial_plan = plan
        self.minted: list[str] = []  # every token ever issued, resets included (for leak checks)
        self._reset_locked(plan)

    def _reset_locked(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.rule_seen = [0] * len(plan.rules)
        self.rule_fired = [0] * len(plan.rules)
        self.authorised_requests = 0
        self.tokens: dict[str, _Token] = {}
        self.active: dict[str, str] = {}
        self.windows: dict[str, deque[float]] = {}
        self.stats = _Stats()

    def reset(self) -> None:
        with self.lock:
            self._reset_locked(self.initial_plan)

    def set_plan(self, plan: FaultPlan) -> None:
        with self.lock:
            self.plan = plan
            self.rule_seen = [0] * len(plan.rules)
            self.rule_fired = [0] * len(plan.rules)
            self.authorised_requests = 0
            for window_key in [k for k in self.windows if k.startswith("api:")]:
                del self.windows[window_key]

    def snapshot(self) -> JsonObject:
        with self.lock:
            rules = [
                {**asdict(rule), "seen": seen, "fired": fired}
                for rule, seen, fired in zip(
                    self.plan.rules, self.rule_seen, self.rule_fired, strict=True
                )
            ]
            now = self.clock()
            return {
                "stats": self.stats.to_dict(),
                "faults": {**self.plan.to_dict(), "rules": rules},
                "dataset": self.dataset.to_dict(),
                "clients": sorted(self.secrets),
                "active_tokens": sum(
                    1 for t in self.tokens.values() if not t.revoked and t.expires_at > now
                ),
            }

    def count_request(self, endpoint: str) -> None:
        with self.lock:
            self.stats.requests[endpoint] += 1

    def count_response(self, status: int) -> None:
        with self.lock:
            self.stats.responses[str(status)] += 1
            if status == 429:
                self.stats.rate_limited += 1

    # ----- rate limits -----

    def _limited_locked(self, key: str, limit: int) -> int | None:
        """Sliding one-minute window; the Retry-After seconds when over the limit."""
        if limit <= 0:
            return None
        now = self.clock()
        window = self.windows.setdefault(key, deque())
        while window and window[0] <= now - _WINDOW_SECONDS:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + _WINDOW_SECONDS - now))
        window.append(now)
        return None

    # ----- faults -----

    def fire(self, endpoint: str, page_size: int) -> _Fired:
        """Count the request against every rule and return the faults it triggers."""
        fired = _Fired()
        with self.lock:
            for n, rule in enumerate(self.plan.rules):
                if not rule.matches(endpoint, page_size):
                    continue
                self.rule_seen[n] += 1
                seen = self.rule_seen[n]
                if seen < rule.at or (rule.times is not None and seen >= rule.at + rule.times):
                    continue
                self.rule_fired[n] += 1
                self.stats.faults_fired[rule.kind] += 1
                self._apply(rule, fired)
            if fired.latency:
                self.stats.latency_injected_seconds += fired.latency
        return fired

    @staticmethod
    def _apply(rule: FaultRule, fired: _Fired) -> None:
        if rule.kind == "latency":
            fired.latency += rule.seconds
        elif rule.kind == "rate_storm" and fired.error is None:
            headers = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
            fired.error = _HttpError(429, "Too many requests", headers)
        elif rule.kind in {"status", "token_down", "status_over_page_size"}:
            if fired.error is None:
                fired.error = _HttpError(rule.status, f"injected fault: HTTP {rule.status}")
        elif rule.kind == "malformed":
            fired.malformed.append(rule)
        elif rule.kind == "duplicates":
            fired.duplicates = max(fired.duplicates, rule.count)
        elif rule.kind == "vanish":
            fired.vanish = max(fired.vanish, rule.count)
        elif rule.kind == "truncated":
            fired.truncate = rule.mode

    # ----- tokens -----

    def check_token_rate(self, client_id: str) -> None:
        """The token endpoint's own limit; every call counts, failed or not."""
        with self.lock:
            retry = self._limited_locked(
                f"token:{client_id}", self.plan.token_rate_limit_per_minute
            )
        if retry is not None:
            raise _HttpError(429, "Too many requests", {"Retry-After": str(retry)})

    def mint(self, client_id: str, client_secret: str) -> JsonObject:
        """A new token for the client; its previous token is revoked at once."""
        with self.lock:
            expected = self.secrets.get(client_id)
            if expected is None or not secrets.compare_digest(expected, client_secret):
                raise _HttpError(401, "invalid client credentials")
            previous = self.active.get(client_id)
            if previous is not None and not self.tokens[previous].revoked:
                self.tokens[previous].revoked = True
                self.stats.tokens_revoked += 1
            token = f"vat_{secrets.token_urlsafe(24)}"
            expires_in = self.plan.token_expires_in
            self.tokens[token] = _Token(client_id, self.clock() + expires_in)
            self.minted.append(token)
            self.active[client_id] = token
            self.stats.tokens_minted += 1
        return {
            "access_token": token,
            "expires_in": math.floor(expires_in),
            "token_type": "Bearer",
        }

    def authorise(self, header: str | None) -> None:
        """Check the bearer token, apply the per-client rate limit, count for revoke rules."""
        token_value = ""
        if header and header[:7].lower() == "bearer ":
            token_value = header[7:].strip()
        with self.lock:
            token = self.tokens.get(token_value)
            key = f"api:{token.client_id if token else 'anonymous'}"
            retry = self._limited_locked(key, self.plan.rate_limit_per_minute)
            if retry is not None:
                raise _HttpError(429, "Too many requests", {"Retry-After": str(retry)})
            if token is None:
                raise _HttpError(401, "missing or unknown bearer token")
            if token.revoked:
                raise _HttpError(401, "token revoked")
            if token.expires_at <= self.clock():
                raise _HttpError(401, "token expired")
            self.authorised_requests += 1
            for n, rule in enumerate(self.plan.rules):
                if rule.kind == "revoke_token" and self.authorised_requests == rule.after:
                    self.rule_fired[n] += 1
                    self.stats.faults_fired[rule.kind] += 1
                    self._revoke_all_locked()

    def _revoke_all_locked(self) -> None:
        for token in self.tokens.values():
            if not token.revoked:
                token.revoked = True
                self.stats.tokens_revoked += 1

    def revoke_all(self) -> None:
        with self.lock:
            self._revoke_all_locked()

    def record_page(self, endpoint: str, items: int, cpu_seconds: float) -> None:
        with self.lock:
            stats = self.stats
            stats.items_served[endpoint] += items
            stats.pages_served += 1
            stats.page_cpu_seconds_total += cpu_seconds
            stats.page_cpu_seconds_max = max(stats.page_cpu_seconds_max, cpu_seconds)


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
        raise _HttpError(400, f"{name} must be true or false, got {raw!r}")
    return value


def _date(params: Mapping[str, list[str]], name: str) -> int | None:
    raw = _one(params, name)
    if raw is None or raw == "":
        return None
    try:
        return parse_date(raw)
    except DataError as exc:
        raise _HttpError(400, f"{name}: {exc}") from exc


def _severities(params: Mapping[str, list[str]]) -> frozenset[str] | None:
    values = _many(params, "severity")
    if values is None:
        return None
    upper = frozenset(v.upper() for v in values)
    if not upper <= set(SEVERITIES):
        raise _HttpError(400, f"severity must be one of {', '.join(SEVERITIES)}")
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
        raise _HttpError(400, f"pageSize must be an integer from 1 to 100, got {raw!r}")
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


# ----- body faults -----


def _malform(record: JsonObject, variant: str, endpoint: str) -> JsonObject:
    """A broken copy of a record that keeps its id, so a client can quarantine it by id."""
    broken = dict(record)
    if endpoint == "vulnerable-assets":
        if variant == "missing_field":
            del broken["assetType"]
        elif variant == "unknown_severity":
            broken["assetType"] = "TOASTER"
        else:
            broken["hasBeenScanned"] = "yes"
            broken["scanners"] = "none"
    elif endpoint == "vulnerability-remediations":
        if variant == "missing_field":
            del broken["vulnerabilityId"]
        elif variant == "unknown_severity":
            broken["severity"] = "severe"
        else:
            broken["detectedDate"] = 1711929600
    elif variant == "missing_field":
        del broken["severity"]
        del broken["firstDetectedDate"]
    elif variant == "unknown_severity":
        broken["severity"] = "SEVERE"
    else:
        broken["cvssSeverityScore"] = "9.8"
        broken["isFixable"] = "yes"
        broken["firstDetectedDate"] = 1711929600
    return broken


def _apply_malformed(items: list[JsonObject], rules: Iterable[FaultRule], endpoint: str) -> None:
    for rule in rules:
        for n in range(min(rule.count, len(items))):
            variant = (
                _MALFORMED_VARIANTS[n % len(_MALFORMED_VARIANTS)]
                if rule.variant == "mixed"
                else rule.variant
            )
            items[n] = _malform(items[n], variant, endpoint)


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
    state: _State

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

    def _send_error(self, error: _HttpError) -> None:
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
            raise _HttpError(400, f"body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _HttpError(400, "body must be a JSON object")
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
                self._send_error(_HttpError(404, f"no route for {method} {path}"))
        except _HttpError as error:
            self._send_error(error)

    def _admin(self, method: str, path: str) -> None:
        state = self.server.state
        if method == "GET" and path == "/_admin/state":
            self._send_json(200, state.snapshot())
            return
        if method != "POST":
            raise _HttpError(405, f"{method} not allowed on {path}")
        body = self._read_json()
        try:
            self._admin_post(path, body)
        except (StandInError, DataError) as exc:
            if isinstance(exc, _HttpError):
                raise
            raise _HttpError(400, str(exc)) from exc
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
            raise _HttpError(404, f"no admin route {path}")

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
            raise _HttpError(400, "grant_type must be client_credentials")
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
        except _HttpError:
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
                raise _HttpError(404, f"no {endpoint.split('/')[0]} with id {item_id!r}")
            items = [record]
            body: JsonObject = record
        else:
            page = self._page(dataset, endpoint, params)
            body = _page_body(page, fired.duplicates)
            if fired.vanish:
                # Same cursors, fewer records: those records were deleted between two pages.
                del page.items[: fired.vanish]
            items = page.items
        _apply_malformed(items, fired.malformed, endpoint)
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
        raise _HttpError(404, f"no route for GET {path}")

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
            raise _HttpError(400, str(exc)) from exc


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
    server.state = _State(dataset or Dataset(), creds, faults or FaultPlan(), clock)
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
    parser.add_argument("--token-expires-in", type=float, default=_DEFAULT_EXPIRES_IN)
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
