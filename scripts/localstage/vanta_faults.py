"""The Vanta stand-in's fault plan: which faults fire on which endpoint, and what they do to a
page's records. The state (localstage.vanta_state) fires them; the HTTP side
(localstage.vanta_standin) answers with them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from localstage.vanta_data import JsonObject

__all__ = [
    "ENDPOINTS",
    "FAULT_KINDS",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "StandInError",
    "apply_malformed",
]

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
_UNLIMITED_BY_DEFAULT: Final = frozenset({"token_down", "status_over_page_size", "latency"})
_MALFORMED_VARIANTS: Final = ("missing_field", "unknown_severity", "wrong_type")
DEFAULT_TOKEN_LIMIT: Final = 5
DEFAULT_EXPIRES_IN: Final = 3599


class StandInError(Exception):
    """Base of the stand-in's errors (bad configuration, port in use...)."""


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
    token_rate_limit_per_minute: int = DEFAULT_TOKEN_LIMIT  # per client_id; 0 = off
    token_expires_in: float = DEFAULT_EXPIRES_IN

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
                    data.get("token_rate_limit_per_minute", DEFAULT_TOKEN_LIMIT)
                ),
                token_expires_in=float(data.get("token_expires_in", DEFAULT_EXPIRES_IN)),
            )
        except (TypeError, ValueError) as exc:
            raise StandInError(f"invalid fault plan: {exc}") from exc

    def to_dict(self) -> JsonObject:
        """JSON form, as accepted by :meth:`from_dict`."""
        body = asdict(self)
        body["rules"] = [asdict(r) for r in self.rules]
        return body


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


def apply_malformed(items: list[JsonObject], rules: Iterable[FaultRule], endpoint: str) -> None:
    for rule in rules:
        for n in range(min(rule.count, len(items))):
            variant = (
                _MALFORMED_VARIANTS[n % len(_MALFORMED_VARIANTS)]
                if rule.variant == "mixed"
                else rule.variant
            )
            items[n] = _malform(items[n], variant, endpoint)
