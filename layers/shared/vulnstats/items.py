"""DynamoDB items of the state table: typed attributes, keys, and records <-> items (pure)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

from vulnstats.errors import InvalidRecordError, StorageError
from vulnstats.models import (
    Asset,
    AssetType,
    Remediation,
    Vulnerability,
    parse_asset,
    parse_datetime,
    parse_remediation,
    parse_vulnerability,
)
from vulnstats.ports import (
    Checkpoint,
    Counts,
    LastComplete,
    RunRecord,
    RunStatus,
    StateItem,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from vulnstats.models import Entity

__all__ = [
    "ENTITY_PK",
    "LAST_COMPLETE_KEY",
    "LOCK_KEY",
    "NEXT_KEY",
    "NO_DEADLINE",
    "PK_RUN",
    "PK_STATS",
    "REMDATE",
    "SNAPSHOT_WITH_DEACTIVATED",
    "AttributeValue",
    "Item",
    "asset_from_item",
    "format_datetime",
    "from_attribute",
    "from_item",
    "last_complete_from_item",
    "last_complete_item",
    "lock_item",
    "record_from_item",
    "remediation_from_item",
    "run_from_item",
    "run_item",
    "run_key",
    "snapshot_from_item",
    "snapshot_items",
    "snapshot_key",
    "snapshot_sort_key",
    "state_item",
    "state_key",
    "to_attribute",
    "to_item",
    "vulnerability_from_item",
]

# The low-level client's typed attribute ({"S": "x"}, {"N": "1"}, {"M": {...}}, ...).
type AttributeValue = dict[str, Any]
type Item = dict[str, AttributeValue]

ENTITY_PK: Final[Mapping[Entity, str]] = {
    "vulnerabilities": "VULN",
    "remediations": "REM",
    "assets": "ASSET",
}
PK_RUN: Final = "RUN"
PK_STATS: Final = "STATS"
REMDATE: Final = "REMDATE"
# Sorts after every ISO date, so findings without an SLA come last in gsi1.
NO_DEADLINE: Final = "~"
_LATEST: Final = "LATEST"
_DAY_PREFIX: Final = "DAY#"
# The snapshot that counts deactivated findings as open (absent from items written before it).
SNAPSHOT_WITH_DEACTIVATED: Final = "snapshot_with_deactivated"
_COMPACT: Final = (",", ":")


# ----- typed attributes -----


def to_attribute(value: object) -> AttributeValue:
    """One Python value as a typed attribute: None, bool, int, float, str, datetime, mapping,
    list or tuple (datetimes become ISO strings, see :func:`format_datetime`)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool | str):  # bool before int: bool is an int subclass
        return {"BOOL" if isinstance(value, bool) else "S": value}
    if isinstance(value, int | float):
        return {"N": _number(value)}
    if isinstance(value, datetime):
        return {"S": format_datetime(value)}
    if isinstance(value, Mapping):
        return {"M": {str(key): to_attribute(item) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(item) for item in value]}
    raise TypeError(f"cannot store a {type(value).__name__} as a DynamoDB attribute")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"DynamoDB numbers must be finite, not {value!r}")
    return repr(value)


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    """The Python value of a typed attribute (numbers: int when integral in form, else float)."""
    for kind, value in attribute.items():
        if kind == "S":
            return value
        if kind == "N":
            text = str(value)
            return int(text) if text.lstrip("-").isdigit() else float(text)
        if kind == "BOOL":
            return bool(value)
        if kind == "NULL":
            return None
        if kind == "M":
            return {key: from_attribute(item) for key, item in value.items()}
        if kind == "L":
            return [from_attribute(item) for item in value]
        raise TypeError(f"unsupported DynamoDB attribute type {kind!r}")
    raise TypeError("empty DynamoDB attribute")


def to_item(values: Mapping[str, object]) -> Item:
    """A mapping as an item; None values are left out (absent, not NULL, so filters stay simple)."""
    return {name: to_attribute(value) for name, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's attributes as plain Python values."""
    return {name: from_attribute(value) for name, value in item.items()}


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and ``Z``: fixed width, so strings sort as times."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: storage times must be aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _opt_datetime(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value)


# ----- keys -----


def state_key(entity: Entity, record_id: str) -> Item:
    """The key of one finding, remediation or asset."""
    return {"pk": {"S": ENTITY_PK[entity]}, "sk": {"S": record_id}}


def run_key(run_id: str) -> Item:
    """The key of a run record."""
    return {"pk": {"S": PK_RUN}, "sk": {"S": run_id}}


LOCK_KEY: Final[Mapping[str, AttributeValue]] = {"pk": {"S": "LOCK"}, "sk": {"S": "SYNC"}}
# The next run: the one POST /sync promised while another was live or queued (docs/sync.md).
NEXT_KEY: Final[Mapping[str, AttributeValue]] = {"pk": {"S": "LOCK"}, "sk": {"S": "NEXT"}}
LAST_COMPLETE_KEY: Final[Mapping[str, AttributeValue]] = {
    "pk": {"S": "META"},
    "sk": {"S": "LAST_COMPLETE"},
}


def snapshot_key(day: date | str | None = None) -> Item:
    """The latest snapshot's key (``day`` None) or that of one UTC day (``YYYY-MM-DD``)."""
    return {"pk": {"S": PK_STATS}, "sk": {"S": snapshot_sort_key(day)}}


def snapshot_sort_key(day: date | str | None) -> str:
    """``LATEST`` or ``DAY#<YYYY-MM-DD>``."""
    if day is None:
        return _LATEST
    return _DAY_PREFIX + (day if isinstance(day, str) else _day_text(day))


def _day_text(day: date) -> str:
    if isinstance(day, datetime):
        return format_datetime(day)[:10]
    return day.isoformat()


# ----- state items -----


def _raw_json(raw: Mapping[str, Any]) -> str:
    return json.dumps(raw, separators=_COMPACT, ensure_ascii=False)


def state_item(entity: Entity, item: StateItem) -> Item:
    """The full item of one validated record (see docs/sync.md's table)."""
    record = item.record
    values: dict[str, object] = {"pk": ENTITY_PK[entity], "sk": record.id, "h": item.content_hash}
    if entity == "vulnerabilities" and isinstance(record, Vulnerability):
        values.update(_vulnerability_values(record))
    elif entity == "remediations" and isinstance(record, Remediation):
        values.update(_remediation_values(record))
    elif entity == "assets" and isinstance(record, Asset):
        values.update({"assetType": record.asset_type.value, "name": record.name})
    else:
        raise TypeError(f"a {type(record).__name__} is not a record of {entity}")
    values["data"] = _raw_json(item.raw)
    return to_item(values)


def _vulnerability_values(record: Vulnerability) -> dict[str, object]:
    remediate_by = _opt_datetime(record.remediate_by_date)
    return {
        "severity": record.severity.value,
        "integrationId": record.integration_id,
        "assetId": record.asset_id,
        "assetType": None if record.asset_type is None else record.asset_type.value,
        "isFixable": record.is_fixable,
        "firstDetectedDate": format_datetime(record.first_detected_date),
        "remediateByDate": remediate_by,
        "deactivated": record.deactivated,
        # Beyond the table's main attributes: lets a reader decide "open at t" without `data`.
        "deactivatedIndefinitely": record.deactivated_indefinitely,
        "deactivatedUntil": _opt_datetime(record.deactivated_until),
        "name": record.name,
        "packageIdentifier": record.package_identifier,
        "gsi1pk": f"SEV#{record.severity.value}",
        "gsi1sk": f"{remediate_by or NO_DEADLINE}#{record.id}",
    }


def _remediation_values(record: Remediation) -> dict[str, object]:
    remediated = _opt_datetime(record.remediation_date)
    values: dict[str, object] = {
        "severity": record.severity.value,
        "detectedDate": format_datetime(record.detected_date),
        "slaDeadlineDate": _opt_datetime(record.sla_deadline_date),
        "remediationDate": remediated,
        "vulnerabilityId": record.vulnerability_id,
        "assetId": record.vulnerable_asset_id,
    }
    # Not yet remediated: no place on the remediation-date index.
    if remediated is not None:
        values["gsi1pk"] = REMDATE
        values["gsi1sk"] = f"{remediated}#{record.id}"
    return values


def _raw_of(item: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        raw = json.loads(item["data"]["S"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StorageError(f"item {_describe(item)} has no readable data attribute") from exc
    if not isinstance(raw, Mapping):
        raise StorageError(f"item {_describe(item)}: data is not a JSON object")
    return raw


def _describe(item: Mapping[str, Any]) -> str:
    pk = item.get("pk", {}).get("S", "?")
    sk = item.get("sk", {}).get("S", "?")
    return f"{pk}/{sk}"


def vulnerability_from_item(item: Mapping[str, Any]) -> Vulnerability:
    """The finding stored in ``item``, joined with its stored asset type."""
    try:
        record = parse_vulnerability(_raw_of(item))
    except InvalidRecordError as exc:
        raise StorageError(f"item {_describe(item)} no longer validates: {exc.reason}") from exc
    asset_type = item.get("assetType", {}).get("S")
    return record.with_asset_type(None if asset_type is None else AssetType(asset_type))


def remediation_from_item(item: Mapping[str, Any]) -> Remediation:
    """The remediation stored in ``item``."""
    try:
        return parse_remediation(_raw_of(item))
    except InvalidRecordError as exc:
        raise StorageError(f"item {_describe(item)} no longer validates: {exc.reason}") from exc


def asset_from_item(item: Mapping[str, Any]) -> Asset:
    """The asset stored in ``item``."""
    try:
        return parse_asset(_raw_of(item))
    except InvalidRecordError as exc:
        raise StorageError(f"item {_describe(item)} no longer validates: {exc.reason}") from exc


def record_from_item(
    entity: Entity, item: Mapping[str, Any]
) -> Vulnerability | Remediation | Asset:
    """The record of an entity stored in ``item``."""
    if entity == "vulnerabilities":
        return vulnerability_from_item(item)
    if entity == "remediations":
        return remediation_from_item(item)
    return asset_from_item(item)


# ----- run records, lock, last complete run, snapshots -----


def run_item(run: RunRecord) -> Item:
    """A run record as an item (checkpoint and counts as maps, times as ISO strings)."""
    return to_item(
        {
            "pk": PK_RUN,
            "sk": run.run_id,
            "status": run.status.value,
            "trigger": run.trigger,
            "reason": run.reason,
            "started_at": format_datetime(run.started_at),
            "updated_at": format_datetime(run.updated_at),
            "finished_at": _opt_datetime(run.finished_at),
            # to_attribute keeps a None cursor as NULL inside the map.
            "checkpoint": run.checkpoint.to_dict(),
            "counts": run.counts.to_dict(),
            "continuations": run.continuations,
            "error": run.error,
        }
    )


def run_from_item(item: Mapping[str, Any]) -> RunRecord:
    """Inverse of :func:`run_item`."""
    values = from_item(item)
    finished = values.get("finished_at")
    return RunRecord(
        run_id=values["sk"],
        status=RunStatus(values["status"]),
        trigger=values.get("trigger", ""),
        started_at=parse_datetime(values["started_at"]),
        updated_at=parse_datetime(values["updated_at"]),
        reason=values.get("reason", ""),
        finished_at=None if finished is None else parse_datetime(finished),
        checkpoint=Checkpoint.from_dict(values.get("checkpoint") or {}),
        counts=Counts.from_dict(values.get("counts") or {}),
        continuations=int(values.get("continuations", 0)),
        error=values.get("error"),
    )


def lock_item(run_id: str, lease_until: int) -> Item:
    """The lock item held by ``run_id`` until ``lease_until`` (epoch seconds)."""
    return {**LOCK_KEY, "run_id": {"S": run_id}, "lease_until": {"N": str(lease_until)}}


def last_complete_item(last: LastComplete) -> Item:
    """The last complete run as an item."""
    values = {
        "run_id": last.run_id,
        "started_at": format_datetime(last.started_at),
        "finished_at": format_datetime(last.finished_at),
    }
    if last.remediations_retry_from is not None:
        values["remediations_retry_from"] = format_datetime(last.remediations_retry_from)
    return {**LAST_COMPLETE_KEY, **to_item(values)}


def last_complete_from_item(item: Mapping[str, Any]) -> LastComplete:
    """Inverse of :func:`last_complete_item`."""
    values = from_item(item)
    retry_from = values.get("remediations_retry_from")
    return LastComplete(
        run_id=values["run_id"],
        started_at=parse_datetime(values["started_at"]),
        finished_at=parse_datetime(values["finished_at"]),
        remediations_retry_from=None if retry_from is None else parse_datetime(retry_from),
    )


def _snapshot_json(snapshot: Mapping[str, Any]) -> str:
    return json.dumps(snapshot, separators=_COMPACT, ensure_ascii=False, sort_keys=True)


def snapshot_items(
    snapshot: Mapping[str, Any],
    *,
    run_id: str,
    computed_at: datetime,
    with_deactivated: Mapping[str, Any] | None = None,
) -> Sequence[Item]:
    """The latest item and the item of computed_at's UTC day, with the same content."""
    body = {
        "snapshot": _snapshot_json(snapshot),
        "computed_at": format_datetime(computed_at),
        "run_id": run_id,
    }
    if with_deactivated is not None:
        body[SNAPSHOT_WITH_DEACTIVATED] = _snapshot_json(with_deactivated)
    return [
        to_item({"pk": PK_STATS, "sk": snapshot_sort_key(day), **body})
        for day in (None, computed_at)
    ]


def snapshot_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """``{"day": "YYYY-MM-DD" or None (latest), "run_id", "computed_at" (ISO), "snapshot",
    "snapshot_with_deactivated"}``, both snapshots in the current schema (the second None for
    an item written before it existed)."""
    values = from_item(item)
    sort_key = str(values["sk"])
    with_deactivated = values.get(SNAPSHOT_WITH_DEACTIVATED)
    return {
        "day": sort_key.removeprefix(_DAY_PREFIX) if sort_key.startswith(_DAY_PREFIX) else None,
        "run_id": values["run_id"],
        "computed_at": values["computed_at"],
        "snapshot": _current_snapshot(values["snapshot"]),
        "snapshot_with_deactivated": (
            None if with_deactivated is None else _current_snapshot(with_deactivated)
        ),
    }


def _current_snapshot(text: str) -> dict[str, Any]:
    snapshot: dict[str, Any] = json.loads(text)
    if "schema_version" in snapshot:
        # Stored by a version before the camelCase schema: only such reads load the renaming.
        from vulnstats.stats import upgrade_snapshot  # noqa: PLC0415

        return upgrade_snapshot(snapshot)
    return snapshot
