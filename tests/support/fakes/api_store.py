"""In-memory ReadStore for the API: findings as real table items, runs, snapshots and the lock."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from api_fn.app import create_app
from api_fn.settings import ApiSettings
from fakes.stores import MemoryRuns
from vulnstats.items import from_item, snapshot_from_item, snapshot_items, state_item
from vulnstats.models import AssetType, content_hash, parse_vulnerability
from vulnstats.ports import StateItem
from vulnstats.queries import (
    SEVERITY_INDEX,
    FindingFilter,
    FindingPage,
    decode_cursor,
    encode_cursor,
    finding_view,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    from vulnstats.ports import LastComplete, RunRecord

__all__ = [
    "NOW",
    "Answer",
    "Api",
    "MemoryReadStore",
    "RecordingStarter",
    "api_settings",
    "finding_values",
    "make_api",
    "raw_finding",
]


def raw_finding(finding_id: str, **fields: Any) -> dict[str, Any]:
    """A valid raw Vanta finding; ``fields`` override the defaults (None clears a field)."""
    raw: dict[str, Any] = {
        "id": finding_id,
        "name": f"CVE-2026-{abs(hash(finding_id)) % 10000:04d}",
        "description": "a finding",
        "integrationId": "aws",
        "targetId": "asset-1",
        "isFixable": True,
        "severity": "HIGH",
        "firstDetectedDate": "2026-10-01T00:00:00.000Z",
        "remediateByDate": "2026-12-01T00:00:00.000Z",
        "packageIdentifier": "pkg:pypi/requests@2.0.0",
        "deactivateMetadata": None,
    }
    raw.update(fields)
    return raw


def finding_values(raw: Mapping[str, Any], asset_type: AssetType | None) -> dict[str, Any]:
    """The plain values of the table item the sync would write for ``raw``."""
    record = parse_vulnerability(raw).with_asset_type(asset_type)
    item = state_item("vulnerabilities", StateItem(record, dict(raw), content_hash(raw)))
    return from_item(item)


@dataclass
class MemoryReadStore:
    """ReadStore in dicts, ordered like the table (by id) and gsi1 (by deadline, then id)."""

    findings: dict[str, dict[str, Any]] = field(default_factory=dict)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # items by sort key
    runs: dict[str, RunRecord] = field(default_factory=dict)
    last: LastComplete | None = None
    lock: tuple[str, datetime] | None = None  # holder and lease end
    failure: Exception | None = None  # raised by every read when set
    calls: list[str] = field(default_factory=list)

    def _read(self, name: str) -> None:
        self.calls.append(name)
        if self.failure is not None:
            raise self.failure

    def add_finding(self, raw: Mapping[str, Any], asset_type: AssetType | None = None) -> None:
        """Store a finding as the sync would."""
        values = finding_values(raw, asset_type)
        self.findings[values["sk"]] = values

    def add_snapshot(
        self,
        snapshot: Mapping[str, Any],
        *,
        run_id: str,
        computed_at: datetime,
        with_deactivated: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a snapshot as latest and as its day's, as the table items the sync writes."""
        for item in snapshot_items(
            snapshot, run_id=run_id, computed_at=computed_at, with_deactivated=with_deactivated
        ):
            self.add_snapshot_item(item)

    def add_snapshot_item(self, item: Mapping[str, Any]) -> None:
        """Store one snapshot item as it is (for items an earlier version wrote)."""
        self.snapshots[item["sk"]["S"]] = dict(item)

    # ----- ReadStore -----

    def last_complete(self) -> LastComplete | None:
        self._read("last_complete")
        return self.last

    def get_snapshot(self, day: str | None = None) -> dict[str, Any] | None:
        self._read("get_snapshot")
        found = self.snapshots.get("LATEST" if day is None else f"DAY#{day}")
        return None if found is None else snapshot_from_item(found)

    def snapshot_history(self, days: int, today: Any = None) -> list[dict[str, Any]]:
        self._read("snapshot_history")
        daily = sorted(key for key in self.snapshots if key != "LATEST")
        return [snapshot_from_item(self.snapshots[key]) for key in daily[-days:]]

    def list_findings(
        self, filters: FindingFilter, *, limit: int, cursor: str | None, now: datetime
    ) -> FindingPage:
        self._read("list_findings")
        start = None if cursor is None else decode_cursor(cursor, filters)
        by_deadline = filters.index == SEVERITY_INDEX
        names = ("gsi1pk", "gsi1sk", "pk", "sk") if by_deadline else ("pk", "sk")

        def position(values: Mapping[str, Any]) -> tuple[str, ...]:
            # gsi1 orders by its sort key (table key as tie-break); the table by sk.
            return (values["gsi1sk"], values["sk"]) if by_deadline else (values["sk"],)

        ordered = sorted(
            (v for v in self.findings.values() if filters.matches(v, now)), key=position
        )
        if start is not None:
            ordered = [v for v in ordered if position(v) > position(start)]
        page = ordered[:limit]
        next_cursor = None
        if len(ordered) > limit:
            next_cursor = encode_cursor(
                filters.index, {name: str(page[-1][name]) for name in names}, filters.fingerprint()
            )
        return FindingPage([finding_view(v, now) for v in page], next_cursor)

    def get_finding(self, finding_id: str, now: datetime) -> dict[str, Any] | None:
        self._read("get_finding")
        values = self.findings.get(finding_id)
        if values is None:
            return None
        return finding_view(values, now) | {"record": json.loads(values["data"])}

    def latest_runs(self, limit: int) -> list[RunRecord]:
        self._read("latest_runs")
        return [self.runs[run_id] for run_id in sorted(self.runs, reverse=True)[:limit]]

    def get_run(self, run_id: str) -> RunRecord | None:
        self._read("get_run")
        return self.runs.get(run_id)

    def lock_holder(self, now: datetime) -> str | None:
        self._read("lock_holder")
        if self.lock is None or self.lock[1] < now:
            return None
        return self.lock[0]


# ----- a harness: the API resolved in-process over the store -----

NOW = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)


@dataclass
class RecordingStarter:
    """Stands for the SyncRequests queue: the triggers sent to it."""

    events: list[dict[str, Any]] = field(default_factory=list)
    failure: Exception | None = None

    def __call__(self, event: Mapping[str, Any]) -> str:
        if self.failure is not None:
            raise self.failure
        self.events.append(dict(event))
        return f"message-{len(self.events)}"


@dataclass
class Answer:
    """One resolver answer: status, lower-case headers, parsed JSON body."""

    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Api:
    """Sends REST proxy events built from the /health fixture to a resolver."""

    app: APIGatewayRestResolver
    store: MemoryReadStore
    starter: RecordingStarter
    claims: MemoryRuns
    base: dict[str, Any]
    context: Any

    def event(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(json.dumps(self.base))
        event["httpMethod"] = method
        event["path"] = path
        event["resource"] = path
        event["queryStringParameters"] = dict(query) if query else None
        event["multiValueQueryStringParameters"] = (
            {k: [v] for k, v in query.items()} if query else None
        )
        event["body"] = body
        for name, value in (headers or {}).items():
            event["headers"][name] = value
            event["multiValueHeaders"][name] = [value]
        return event

    def send(self, event: Mapping[str, Any]) -> Answer:
        response = self.app.resolve(dict(event), self.context)
        text = response.get("body") or ""
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers.setdefault(name.lower(), ", ".join(values))
        return Answer(response["statusCode"], headers, json.loads(text) if text else None)

    def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        return self.send(self.event(method, path, **kwargs))


def api_settings(ttl: int = 120) -> ApiSettings:
    return ApiSettings(
        app_version="1.4.2",
        stage_name="test",
        table_name="t",
        sync_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/sync-requests",
        cache_ttl_seconds=ttl,
    )


def make_api(load_event: Any, lambda_context: Any, *, ttl: int = 120) -> Api:
    store = MemoryReadStore()
    starter = RecordingStarter()
    claims = MemoryRuns()
    app = create_app(
        api_settings(ttl),
        store,
        start_sync=starter,
        claims=claims,
        clock=lambda: NOW,
        new_run_id=lambda now: f"{now:%Y%m%dT%H%M%SZ}-0000abcd",
    )
    return Api(app, store, starter, claims, load_event("api_get_health.json"), lambda_context)
