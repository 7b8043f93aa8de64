"""The Vanta stand-in's state, behind one lock: data set, fault plan, OAuth tokens, rate
windows and counters. The HTTP side (localstage.vanta_standin) asks it what to answer."""

from __future__ import annotations

import math
import secrets
import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from localstage.vanta_faults import FaultPlan, FaultRule, StandInError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from localstage.vanta_data import Dataset, JsonObject

__all__ = ["DEFAULT_CREDENTIALS", "Credentials", "Fired", "HttpError", "State"]

_WINDOW_SECONDS: Final = 60.0


class HttpError(StandInError):
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
class Fired:
    """Faults that apply to one request, decided under the lock."""

    latency: float = 0.0
    error: HttpError | None = None
    malformed: list[FaultRule] = field(default_factory=list)
    duplicates: int = 0
    vanish: int = 0
    truncate: Literal["invalid_json", "short_read"] | None = None


class State:
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

    def fire(self, endpoint: str, page_size: int) -> Fired:
        """Count the request against every rule and return the faults it triggers."""
        fired = Fired()
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
    def _apply(rule: FaultRule, fired: Fired) -> None:
        if rule.kind == "latency":
            fired.latency += rule.seconds
        elif rule.kind == "rate_storm" and fired.error is None:
            headers = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
            fired.error = HttpError(429, "Too many requests", headers)
        elif rule.kind in {"status", "token_down", "status_over_page_size"}:
            if fired.error is None:
                fired.error = HttpError(rule.status, f"injected fault: HTTP {rule.status}")
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
            raise HttpError(429, "Too many requests", {"Retry-After": str(retry)})

    def mint(self, client_id: str, client_secret: str) -> JsonObject:
        """A new token for the client; its previous token is revoked at once."""
        with self.lock:
            expected = self.secrets.get(client_id)
            if expected is None or not secrets.compare_digest(expected, client_secret):
                raise HttpError(401, "invalid client credentials")
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
                raise HttpError(429, "Too many requests", {"Retry-After": str(retry)})
            if token is None:
                raise HttpError(401, "missing or unknown bearer token")
            if token.revoked:
                raise HttpError(401, "token revoked")
            if token.expires_at <= self.clock():
                raise HttpError(401, "token expired")
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
