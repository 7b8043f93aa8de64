"""Query-string and body parsing: typed values out, BadRequestError naming the parameter."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Final

from api_fn.errors import BadRequestError
from vulnstats.models import AssetType, Severity
from vulnstats.queries import FindingFilter
from vulnstats.triggers import MAX_REASON

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

__all__ = [
    "DEFAULT_HISTORY_DAYS",
    "DEFAULT_PAGE_LIMIT",
    "DEFAULT_RUNS_LIMIT",
    "FINDING_PARAMETERS",
    "HISTORY_PARAMETERS",
    "MAX_REASON",
    "RUNS_PARAMETERS",
    "STATS_PARAMETERS",
    "FindingListing",
    "check_known",
    "parse_finding_listing",
    "parse_history_days",
    "parse_include_deactivated",
    "parse_runs_limit",
    "parse_sync_reason",
]

DEFAULT_PAGE_LIMIT: Final = 50
MAX_PAGE_LIMIT: Final = 500
DEFAULT_HISTORY_DAYS: Final = 30
MAX_DAYS: Final = 365
DEFAULT_RUNS_LIMIT: Final = 20
MAX_RUNS_LIMIT: Final = 100
MAX_TEXT: Final = 256
DEFAULT_REASON: Final = "requested through the API"

FINDING_PARAMETERS: Final = frozenset(
    {
        "severity",
        "overdue",
        "dueWithinDays",
        "integrationId",
        "assetType",
        "fixable",
        "includeDeactivated",
        "limit",
        "cursor",
    }
)
_INTEGER: Final = re.compile(r"-?[0-9]{1,9}")
_SHOWN_CHARS: Final = 64  # of a client's value quoted back in a 400: enough to spot the mistake


def _shown(raw: str) -> str:
    """A client's value as a 400 quotes it: whole when short, else its start and its length."""
    if len(raw) <= _SHOWN_CHARS:
        return repr(raw)
    return f"{raw[:_SHOWN_CHARS]!r}... ({len(raw)} characters)"


STATS_PARAMETERS: Final = frozenset({"includeDeactivated"})
HISTORY_PARAMETERS: Final = frozenset({"days", "includeDeactivated"})
RUNS_PARAMETERS: Final = frozenset({"limit"})


class FindingListing:
    """A parsed ``GET /vulnerabilities`` request."""

    __slots__ = ("cursor", "filters", "limit")

    def __init__(self, filters: FindingFilter, limit: int, cursor: str | None) -> None:
        """Hold the filters, the page size and the cursor."""
        self.filters = filters
        self.limit = limit
        self.cursor = cursor


def check_known(params: Mapping[str, str] | None, known: Collection[str]) -> dict[str, str]:
    """The parameters as a dict; 400 for one this route does not know (a typo is not ignored)."""
    values = dict(params or {})
    for name in sorted(values):
        if name not in known:
            raise BadRequestError(
                name[:_SHOWN_CHARS],
                f"unknown query parameter; expected one of {', '.join(sorted(known))}",
            )
    return values


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if _INTEGER.fullmatch(text) is None:
        raise BadRequestError(name, f"expected an integer from {low} to {high}, got {_shown(raw)}")
    value = int(text)
    if not low <= value <= high:
        raise BadRequestError(name, f"must be from {low} to {high}, got {value}")
    return value


def _optional_integer(params: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    if params.get(name) is None:
        return None
    return _integer(params, name, low, low, high)


def _boolean(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    text = raw.strip().lower()
    if text not in ("true", "false"):
        raise BadRequestError(name, f"expected true or false, got {_shown(raw)}")
    return text == "true"


def _text(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if not text or len(text) > MAX_TEXT:
        raise BadRequestError(name, f"expected 1 to {MAX_TEXT} characters")
    return text


def _severity(params: Mapping[str, str]) -> Severity | None:
    raw = params.get("severity")
    if raw is None:
        return None
    try:
        return Severity.parse(raw)
    except ValueError:
        expected = ", ".join(member.value for member in Severity)
        raise BadRequestError(
            "severity", f"unknown severity {_shown(raw)}; expected one of {expected} (any case)"
        ) from None


def _asset_type(params: Mapping[str, str]) -> AssetType | None:
    raw = params.get("assetType")
    if raw is None:
        return None
    try:
        return AssetType(raw.strip().upper())
    except ValueError:
        expected = ", ".join(member.value for member in AssetType)
        raise BadRequestError(
            "assetType", f"unknown asset type {_shown(raw)}; expected one of {expected}"
        ) from None


def parse_finding_listing(raw: Mapping[str, str] | None) -> FindingListing:
    """Filters, limit (1..500, default 50) and cursor of ``GET /vulnerabilities``."""
    params = check_known(raw, FINDING_PARAMETERS)
    filters = FindingFilter(
        severity=_severity(params),
        overdue=_boolean(params, "overdue"),
        due_within_days=_optional_integer(params, "dueWithinDays", 1, MAX_DAYS),
        integration_id=_text(params, "integrationId"),
        asset_type=_asset_type(params),
        fixable=_boolean(params, "fixable"),
        include_deactivated=bool(_boolean(params, "includeDeactivated")),
    )
    limit = _integer(params, "limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT)
    cursor = params.get("cursor")
    if cursor is not None and not cursor.strip():
        raise BadRequestError("cursor", "empty; omit it for the first page")
    return FindingListing(filters, limit, cursor)


def parse_history_days(raw: Mapping[str, str] | None) -> int:
    """``days`` of ``GET /stats/history`` (1..365, default 30)."""
    params = check_known(raw, HISTORY_PARAMETERS)
    return _integer(params, "days", DEFAULT_HISTORY_DAYS, 1, MAX_DAYS)


def parse_include_deactivated(raw: Mapping[str, str] | None, known: Collection[str]) -> bool:
    """``includeDeactivated`` (true or false, default false) of a route knowing ``known``."""
    return bool(_boolean(check_known(raw, known), "includeDeactivated"))


def parse_runs_limit(raw: Mapping[str, str] | None) -> int:
    """``limit`` of ``GET /sync/runs`` (1..100, default 20)."""
    params = check_known(raw, RUNS_PARAMETERS)
    return _integer(params, "limit", DEFAULT_RUNS_LIMIT, 1, MAX_RUNS_LIMIT)


def parse_sync_reason(body: str | None) -> str:
    """The optional ``reason`` of ``POST /sync``'s JSON body (an object, or no body at all)."""
    if body is None or not body.strip():
        return DEFAULT_REASON
    try:
        document: Any = json.loads(body)
    except ValueError as exc:
        raise BadRequestError("body", f"malformed JSON: {exc.args[0]}") from None
    if not isinstance(document, dict):
        raise BadRequestError("body", 'expected a JSON object such as {"reason": "..."}')
    unknown = sorted(set(document) - {"reason"})
    if unknown:
        raise BadRequestError(unknown[0], "unknown field; the body may only hold reason")
    reason = document.get("reason")
    if reason is None:
        return DEFAULT_REASON
    if not isinstance(reason, str):
        raise BadRequestError("reason", f"expected a string, got {type(reason).__name__}")
    if len(reason) > MAX_REASON:
        raise BadRequestError("reason", f"longer than {MAX_REASON} characters")
    return reason.strip() or DEFAULT_REASON
