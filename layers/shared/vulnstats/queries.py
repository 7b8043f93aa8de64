"""The API's read side: findings filtered and paged by opaque cursors, runs, snapshots, health."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from vulnstats.errors import VulnStatsError
from vulnstats.items import (
    LOCK_KEY,
    format_datetime,
    from_item,
    state_key,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from vulnstats.dynamo import DynamoStore
    from vulnstats.models import AssetType, Severity
    from vulnstats.ports import LastComplete, RunRecord

__all__ = [
    "DEFAULT_MAX_READS",
    "MAIN_INDEX",
    "SEVERITY_INDEX",
    "DynamoReader",
    "FindingFilter",
    "FindingPage",
    "InvalidCursorError",
    "ReadStore",
    "decode_cursor",
    "encode_cursor",
    "finding_view",
    "run_view",
]

MAIN_INDEX: Final = "main"
SEVERITY_INDEX: Final = "gsi1"
_KEY_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    MAIN_INDEX: ("pk", "sk"),
    SEVERITY_INDEX: ("gsi1pk", "gsi1sk", "pk", "sk"),
}
_PK_VULN: Final = "VULN"
# The attributes a listing reads: everything but the raw record (``data``) and the hash.
_SUMMARY_ATTRIBUTES: Final = (
    "pk",
    "sk",
    "gsi1pk",
    "gsi1sk",
    "name",
    "severity",
    "integrationId",
    "assetId",
    "assetType",
    "isFixable",
    "firstDetectedDate",
    "remediateByDate",
    "deactivated",
    "deactivatedIndefinitely",
    "deactivatedUntil",
    "packageIdentifier",
)
_MAX_READ_PAGE: Final = 1000
# Query calls one listing request may make before it answers a short page with a cursor.
DEFAULT_MAX_READS: Final = 25
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


class InvalidCursorError(VulnStatsError):
    """A cursor this API did not issue, or issued for other filters; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        """Keep the reason for the 400 answer."""
        self.reason = reason
        super().__init__(f"cursor: {reason}")


@dataclass(frozen=True, slots=True)
class FindingFilter:
    """The filters of ``GET /vulnerabilities``; None means "any".

    ``overdue`` and ``due_within_days`` follow the snapshot's definitions (docs/sync.md):
    overdue is ``remediateByDate < now``; due within N days is ``now <= remediateByDate <=
    now + N days``. Findings without an SLA are never overdue nor due. A finding deactivated at
    ``now`` is left out unless ``include_deactivated``.
    """

    severity: Severity | None = None
    overdue: bool | None = None
    due_within_days: int | None = None
    integration_id: str | None = None
    asset_type: AssetType | None = None
    fixable: bool | None = None
    include_deactivated: bool = False

    def canonical(self) -> dict[str, Any]:
        """The filter as plain JSON values (what a cursor is bound to)."""
        return {
            "severity": None if self.severity is None else self.severity.value,
            "overdue": self.overdue,
            "dueWithinDays": self.due_within_days,
            "integrationId": self.integration_id,
            "assetType": None if self.asset_type is None else self.asset_type.value,
            "fixable": self.fixable,
            "includeDeactivated": self.include_deactivated,
        }

    def fingerprint(self) -> str:
        """A short hash of :meth:`canonical`, carried by cursors."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def index(self) -> str:
        """The index a listing walks: gsi1 when a severity is given, else the table by id."""
        return MAIN_INDEX if self.severity is None else SEVERITY_INDEX

    def deadline_range(self, now: datetime) -> tuple[str | None, str | None] | None:
        """``(lowest, above)`` bounds on remediateByDate strings: lowest inclusive, above
        exclusive (None: unbounded); None when the filters contradict (nothing matches)."""
        lowest: str | None = None
        above: str | None = None
        if self.overdue is True:
            above = format_datetime(now)
        elif self.overdue is False:
            lowest = format_datetime(now)
        if self.due_within_days is not None:
            lowest = format_datetime(now)
            due = format_datetime(now + timedelta(days=self.due_within_days) + _ONE_MICROSECOND)
            above = due if above is None else min(above, due)
        if lowest is not None and above is not None and lowest >= above:
            return None
        return lowest, above

    def matches(self, values: Mapping[str, Any], now: datetime) -> bool:
        """Whether a finding item (plain values, see ``items.from_item``) passes the filters."""
        rbd = values.get("remediateByDate")
        bounds = self.deadline_range(now)
        if bounds is None:
            return False
        lowest, above = bounds
        if (lowest is not None or above is not None) and (
            (rbd is None and above is not None)
            or (rbd is not None and lowest is not None and rbd < lowest)
            or (rbd is not None and above is not None and rbd >= above)
        ):
            return False
        checks = (
            self.severity is None or values.get("severity") == self.severity.value,
            self.integration_id is None or values.get("integrationId") == self.integration_id,
            self.asset_type is None or values.get("assetType") == self.asset_type.value,
            self.fixable is None or values.get("isFixable") is self.fixable,
            self.include_deactivated or not _deactivated_at(values, now),
        )
        return all(checks)


def _deactivated_at(values: Mapping[str, Any], now: datetime) -> bool:
    if not values.get("deactivated"):
        return False
    until = values.get("deactivatedUntil")
    if values.get("deactivatedIndefinitely") or until is None:
        return True
    return bool(until > format_datetime(now))


@dataclass(frozen=True, slots=True)
class FindingPage:
    """One page of findings (API views) and the cursor of the next page (None: last page)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


# ----- cursors -----


def encode_cursor(index: str, key: Mapping[str, str], fingerprint: str) -> str:
    """An opaque cursor: base64url JSON of the index, the exact key of the last item returned
    and the filters' fingerprint."""
    payload = {"v": 1, "i": index, "k": dict(key), "f": fingerprint}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def decode_cursor(cursor: str, filters: FindingFilter) -> dict[str, str]:
    """The key to continue after; InvalidCursorError when the cursor is not ours or was
    issued for other filters."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursorError("not a cursor issued by this API") from exc
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise InvalidCursorError("not a cursor issued by this API")
    index, key, fingerprint = payload.get("i"), payload.get("k"), payload.get("f")
    names = _KEY_NAMES.get(index) if isinstance(index, str) else None
    if (
        names is None
        or not isinstance(key, dict)
        or set(key) != set(names)
        or not all(isinstance(value, str) and value for value in key.values())
        or not isinstance(fingerprint, str)
    ):
        raise InvalidCursorError("not a cursor issued by this API")
    if fingerprint != filters.fingerprint() or index != filters.index:
        raise InvalidCursorError("does not match these filters")
    if key["pk"] != _PK_VULN or (
        filters.severity is not None and key["gsi1pk"] != f"SEV#{filters.severity.value}"
    ):
        raise InvalidCursorError("not a cursor issued by this API")
    return {name: str(key[name]) for name in names}


# ----- views -----


def finding_view(values: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The API's JSON object of one finding item (plain values)."""
    rbd = values.get("remediateByDate")
    return {
        "id": values["sk"],
        "name": values.get("name"),
        "severity": values.get("severity"),
        "integrationId": values.get("integrationId"),
        "assetId": values.get("assetId"),
        "assetType": values.get("assetType"),
        "isFixable": bool(values.get("isFixable", False)),
        "packageIdentifier": values.get("packageIdentifier"),
        "firstDetectedDate": values.get("firstDetectedDate"),
        "remediateByDate": rbd,
        "overdue": rbd is not None and rbd < format_datetime(now),
        "deactivated": _deactivated_at(values, now),
        "deactivatedUntil": values.get("deactivatedUntil"),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value)


def run_view(run: RunRecord) -> dict[str, Any]:
    """The API's JSON object of one sync run."""
    return {
        "runId": run.run_id,
        "status": run.status.value,
        "trigger": run.trigger,
        "reason": run.reason,
        "startedAt": _iso(run.started_at),
        "updatedAt": _iso(run.updated_at),
        "finishedAt": _iso(run.finished_at),
        "checkpoint": {
            "phase": run.checkpoint.phase.value,
            "pageNumber": run.checkpoint.page_number,
        },
        "counts": run.counts.to_dict(),
        "continuations": run.continuations,
        "error": run.error,
    }


# ----- the port and its DynamoDB adapter -----


class ReadStore(Protocol):
    """What the API reads; ``DynamoReader`` is the DynamoDB adapter, tests use a fake."""

    def last_complete(self) -> LastComplete | None:
        """The latest complete run, if any (one GetItem)."""
        ...

    def get_snapshot(self, day: str | None = None) -> dict[str, Any] | None:
        """The latest snapshot, ``{"day", "run_id", "computed_at", "snapshot",
        "snapshot_with_deactivated"}`` (see ``items.snapshot_from_item``), or None."""
        ...

    def snapshot_history(self, days: int, today: Any = None) -> list[dict[str, Any]]:
        """The daily snapshots of the last ``days`` UTC days, oldest first."""
        ...

    def list_findings(
        self, filters: FindingFilter, *, limit: int, cursor: str | None, now: datetime
    ) -> FindingPage:
        """Up to ``limit`` matching findings after ``cursor``; raises InvalidCursorError."""
        ...

    def get_finding(self, finding_id: str, now: datetime) -> dict[str, Any] | None:
        """One finding's view with its raw record under ``record``, or None."""
        ...

    def latest_runs(self, limit: int) -> list[RunRecord]:
        """The most recent runs, newest first."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run by id, or None."""
        ...

    def lock_holder(self, now: datetime) -> str | None:
        """The run id holding a live sync lock at ``now``, or None."""
        ...


class DynamoReader:
    """ReadStore over a DynamoStore: its reads, plus the filtered and paged finding listing."""

    __slots__ = ("max_reads", "page_size", "store")

    def __init__(
        self,
        store: DynamoStore,
        *,
        page_size: int | None = None,
        max_reads: int = DEFAULT_MAX_READS,
    ) -> None:
        """``page_size`` caps DynamoDB's ``Limit`` per Query call (tests use small pages);
        ``max_reads`` bounds the Query calls one listing request makes (see list_findings)."""
        self.store = store
        self.page_size = page_size if page_size is not None else store.page_size
        self.max_reads = max(1, max_reads)

    def last_complete(self) -> LastComplete | None:
        """The latest complete run, if any."""
        return self.store.last_complete()

    def get_snapshot(self, day: str | None = None) -> dict[str, Any] | None:
        """The latest snapshot (or one day's), or None."""
        return self.store.get_snapshot(day)

    def snapshot_history(self, days: int, today: Any = None) -> list[dict[str, Any]]:
        """The daily snapshots of the last ``days`` UTC days, oldest first."""
        return self.store.snapshot_history(days, today)

    def latest_runs(self, limit: int) -> list[RunRecord]:
        """The most recent runs, newest first."""
        return self.store.latest_runs(limit)

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run by id."""
        return self.store.get_run(run_id)

    def lock_holder(self, now: datetime) -> str | None:
        """The run id of a live lock (lease not yet expired), or None (one GetItem)."""
        response = self.store.client.get_item(
            TableName=self.store.table_name, Key=dict(LOCK_KEY), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        lease = item.get("lease_until", {}).get("N")
        if lease is None or float(lease) < now.timestamp():
            return None
        return str(item.get("run_id", {}).get("S", "?"))

    def get_finding(self, finding_id: str, now: datetime) -> dict[str, Any] | None:
        """One finding's view plus its raw record (``record``), or None."""
        response = self.store.client.get_item(
            TableName=self.store.table_name, Key=state_key("vulnerabilities", finding_id)
        )
        item = response.get("Item")
        if not item:
            return None
        values = from_item(item)
        view = finding_view(values, now)
        try:
            record = json.loads(values.get("data") or "{}")
        except ValueError:
            record = {}
        view["record"] = record if isinstance(record, dict) else {}
        return view

    def list_findings(
        self, filters: FindingFilter, *, limit: int, cursor: str | None, now: datetime
    ) -> FindingPage:
        """Up to ``limit`` findings matching ``filters`` after ``cursor``, in index order.

        Reads DynamoDB pages until ``limit + 1`` matches are seen (so the last page has no
        cursor) or the index is exhausted; the next cursor is the exact key of the last item
        returned, so every matching item is returned exactly once across a walk. A very
        selective filter could make one request read the whole table, so after ``max_reads``
        Query calls the page ends early (fewer than ``limit`` items, possibly none) with a
        cursor at the last key DynamoDB evaluated: the walk stays exactly-once, and only the
        last page has no cursor.
        """
        start = None if cursor is None else decode_cursor(cursor, filters)
        bounds = filters.deadline_range(now)
        if bounds is None:
            return FindingPage([], None)
        request = _query_request(filters, bounds, now)
        request["TableName"] = self.store.table_name
        if start is not None:
            request["ExclusiveStartKey"] = {name: {"S": value} for name, value in start.items()}
        names = _KEY_NAMES[filters.index]
        found: list[dict[str, Any]] = []
        filtered = "FilterExpression" in request
        resume: dict[str, Any] | None = None
        for reads in range(1, self.max_reads + 1):
            wanted = limit + 1 - len(found)
            read = min(_MAX_READ_PAGE, wanted * 4 if filtered else wanted)
            request["Limit"] = read if self.page_size is None else min(read, self.page_size)
            response = self.store.client.query(**request)
            found.extend(from_item(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if len(found) > limit or not last:
                break
            if reads == self.max_reads:
                resume = from_item(last)  # read budget spent: continue from DynamoDB's position
            request["ExclusiveStartKey"] = last
        page = found[:limit]
        position = page[-1] if len(found) > limit else resume
        next_cursor = None
        if position is not None:
            next_cursor = encode_cursor(
                filters.index,
                {name: str(position[name]) for name in names},
                filters.fingerprint(),
            )
        return FindingPage([finding_view(values, now) for values in page], next_cursor)


class _Expression:
    """Attribute names and values of one Query, collected as conditions are written."""

    __slots__ = ("names", "values")

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        alias = f"#{attribute}"
        self.names[alias] = attribute
        return alias

    def value(self, alias: str, value: Any) -> str:
        self.values[alias] = value
        return alias


def _range_condition(
    expr: _Expression, attribute: str, lowest: str | None, above: str | None, *, key: bool
) -> str | None:
    """``attribute`` within [lowest, above); on the table (``key`` False) a finding without
    the attribute passes a lower bound only (no SLA: never overdue)."""
    target = expr.name(attribute)
    if lowest is not None and above is not None:
        low, high = expr.value(":lowest", {"S": lowest}), expr.value(":above", {"S": above})
        # gsi1sk is "<date or ~>#<id>": an exclusive bound that is a bare date never equals a
        # sort key, so BETWEEN behaves as [lowest, above) there.
        if key:
            return f"{target} BETWEEN {low} AND {high}"
        return f"{target} >= {low} AND {target} < {high}"
    if above is not None:
        return f"{target} < {expr.value(':above', {'S': above})}"
    if lowest is not None:
        low = expr.value(":lowest", {"S": lowest})
        return (
            f"{target} >= {low}"
            if key
            else f"(attribute_not_exists({target}) OR {target} >= {low})"
        )
    return None


def _attribute_conditions(expr: _Expression, filters: FindingFilter, now: datetime) -> list[str]:
    conditions: list[str] = []
    if filters.integration_id is not None:
        value = expr.value(":integration", {"S": filters.integration_id})
        conditions.append(f"{expr.name('integrationId')} = {value}")
    if filters.asset_type is not None:
        value = expr.value(":assetType", {"S": filters.asset_type.value})
        conditions.append(f"{expr.name('assetType')} = {value}")
    if filters.fixable is not None:
        value = expr.value(":fixable", {"BOOL": filters.fixable})
        conditions.append(f"{expr.name('isFixable')} = {value}")
    if not filters.include_deactivated:
        deactivated = expr.name("deactivated")
        indefinitely = expr.name("deactivatedIndefinitely")
        until = expr.name("deactivatedUntil")
        false = expr.value(":false", {"BOOL": False})
        moment = expr.value(":now", {"S": format_datetime(now)})
        # Not deactivated at now: never deactivated, or a dated deactivation that has lapsed.
        conditions.append(
            f"(attribute_not_exists({deactivated}) OR {deactivated} = {false} OR "
            f"(attribute_exists({until}) AND {until} <= {moment} AND "
            f"(attribute_not_exists({indefinitely}) OR {indefinitely} = {false})))"
        )
    return conditions


def _query_request(
    filters: FindingFilter, bounds: tuple[str | None, str | None], now: datetime
) -> dict[str, Any]:
    """The Query arguments (without TableName, Limit and start key) for these filters."""
    expr = _Expression()
    lowest, above = bounds
    conditions: list[str] = []
    if filters.severity is None:
        key_condition = f"{expr.name('pk')} = {expr.value(':pk', {'S': _PK_VULN})}"
        deadline = _range_condition(expr, "remediateByDate", lowest, above, key=False)
        if deadline is not None:
            conditions.append(deadline)
    else:
        partition = expr.value(":pk", {"S": f"SEV#{filters.severity.value}"})
        key_condition = f"{expr.name('gsi1pk')} = {partition}"
        deadline = _range_condition(expr, "gsi1sk", lowest, above, key=True)
        if deadline is not None:
            key_condition += f" AND {deadline}"
    conditions.extend(_attribute_conditions(expr, filters, now))
    projection = ", ".join(expr.name(attribute) for attribute in _SUMMARY_ATTRIBUTES)
    request: dict[str, Any] = {
        "KeyConditionExpression": key_condition,
        "ProjectionExpression": projection,
        "ExpressionAttributeNames": expr.names,
        "ExpressionAttributeValues": expr.values,
    }
    if filters.severity is not None:
        request["IndexName"] = SEVERITY_INDEX
    if conditions:
        request["FilterExpression"] = " AND ".join(conditions)
    return request
