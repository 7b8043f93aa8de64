"""DynamoDB adapter: state items, run records, the run lock and statistics snapshots."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from lambdakit.clients import get_client
from lambdakit.lazy import lazy_import
from lambdakit.retry import Retrier, RetryError
from vulnstats.errors import StorageError
from vulnstats.items import (
    ENTITY_PK,
    LAST_COMPLETE_KEY,
    LOCK_KEY,
    NEXT_KEY,
    PK_RUN,
    PK_STATS,
    REMDATE,
    format_datetime,
    last_complete_from_item,
    last_complete_item,
    lock_item,
    record_from_item,
    remediation_from_item,
    run_from_item,
    run_item,
    run_key,
    snapshot_from_item,
    snapshot_items,
    snapshot_key,
    snapshot_sort_key,
    state_item,
    state_key,
    vulnerability_from_item,
)
from vulnstats.ports import RunInProgressError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import botocore.exceptions
    from mypy_boto3_dynamodb import DynamoDBClient

    from vulnstats.items import Item
    from vulnstats.models import Entity, Remediation, Vulnerability
    from vulnstats.ports import LastComplete, Record, RunRecord, StateItem
else:
    botocore = lazy_import("botocore.exceptions")

__all__ = ["BATCH_GET_LIMIT", "BATCH_WRITE_LIMIT", "DynamoStore"]

BATCH_GET_LIMIT: Final = 100
BATCH_WRITE_LIMIT: Final = 25
_CONDITION_FAILED: Final = "ConditionalCheckFailedException"
_LOG: Final = logging.getLogger(__name__)


class _UnprocessedError(Exception):
    """Some requests of a batch came back unprocessed; internal, drives the Retrier."""


class _Pending:
    """The requests of one batch still to send."""

    __slots__ = ("requests",)

    def __init__(self, requests: list[Any]) -> None:
        self.requests = requests


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DynamoStore:
    """StateStore, RunStore and SnapshotStore on one DynamoDB table, with the low-level client.

    ``client`` defaults to the environment's cached client (created on first use); ``sleep`` is
    the wait between retries of unprocessed batch requests (bounded by ``batch_attempts``);
    ``clock`` gives "now" where a caller passes none. ``page_size`` sets ``Limit`` on queries
    (None: DynamoDB's 1 MB pages). ``items_written`` and ``items_deleted`` count, per entity,
    the state items this adapter wrote and deleted; with ``track_ids``, ``writes`` and
    ``deletes`` also count them per ``(entity, id)`` (as the in-memory test fakes do).
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utc_now,
        batch_attempts: int = 8,
        page_size: int | None = None,
        track_ids: bool = False,
    ) -> None:
        """Bind the table; nothing is imported or created until the first call."""
        self.table_name = table_name
        self._client = client
        self.clock = clock
        self.page_size = page_size
        self.items_written: Counter[str] = Counter()
        self.items_deleted: Counter[str] = Counter()
        # Per (entity, id) only when asked (tests): it grows with the records a run writes.
        self.writes: Counter[tuple[str, str]] | None = Counter() if track_ids else None
        self.deletes: Counter[tuple[str, str]] | None = Counter() if track_ids else None
        self._retrier = Retrier(
            retryable=lambda exc: isinstance(exc, _UnprocessedError),
            max_attempts=batch_attempts,
            base_delay=0.05,
            max_delay=2.0,
            sleep=sleep,
            name=f"dynamodb:{table_name}",
        )

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client (the injected one, or the environment's)."""
        if self._client is None:
            self._client = get_client("dynamodb")
        return self._client

    def use_client(self, client: DynamoDBClient | None) -> None:
        """Switch to ``client`` (None: the environment's, on next use), e.g. after a restore."""
        self._client = client

    # ----- errors -----

    def _error(self, operation: str, exc: Exception) -> StorageError:
        code: str | None = None
        if isinstance(exc, botocore.exceptions.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", "")) or None
        return StorageError(
            f"DynamoDB table {self.table_name}: {operation} failed: {exc}",
            resource=self.table_name,
            operation=operation,
            code=code,
        )

    def _call[R](self, operation: str, fn: Callable[..., R], /, **kwargs: Any) -> R:
        try:
            return fn(TableName=self.table_name, **kwargs)
        except StorageError:
            # The botocore-free client (vulnstats.dynamo_http) maps its errors itself; catching
            # them first also keeps the clause below from importing botocore to match them.
            raise
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._error(operation, exc) from exc

    # ----- StateStore -----

    def stored_hashes(self, entity: Entity, ids: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each id that exists (BatchGetItem, 100 keys a call)."""
        unique = list(dict.fromkeys(ids))
        hashes: dict[str, str] = {}
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            keys = [
                state_key(entity, record_id)
                for record_id in unique[start : start + BATCH_GET_LIMIT]
            ]
            for item in self._batch_get(keys):
                hashes[item["sk"]["S"]] = item.get("h", {}).get("S", "")
        return hashes

    def _batch_get(self, keys: list[Item]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        pending = _Pending(keys)

        def attempt() -> None:
            request = {
                self.table_name: {
                    "Keys": pending.requests,
                    "ProjectionExpression": "#pk, #sk, #h",
                    "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#h": "h"},
                    "ConsistentRead": True,
                }
            }
            response: Any = self._call_batch("BatchGetItem", self.client.batch_get_item, request)
            found.extend(response.get("Responses", {}).get(self.table_name, []))
            unprocessed = response.get("UnprocessedKeys", {}).get(self.table_name, {})
            pending.requests = list(unprocessed.get("Keys", []))
            if pending.requests:
                raise _UnprocessedError(f"{len(pending.requests)} key(s) unprocessed")

        self._drive("BatchGetItem", attempt, pending)
        return found

    def _call_batch(self, operation: str, fn: Callable[..., Any], request: Any) -> Any:
        try:
            return fn(RequestItems=request)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._error(operation, exc) from exc

    def _drive(self, operation: str, attempt: Callable[[], None], pending: _Pending) -> None:
        try:
            self._retrier.call(attempt)
        except RetryError as exc:
            raise StorageError(
                f"DynamoDB table {self.table_name}: {operation} left {len(pending.requests)} "
                f"request(s) unprocessed after {exc.attempts} attempt(s)",
                resource=self.table_name,
                operation=operation,
            ) from exc

    def write(self, entity: Entity, items: Sequence[StateItem]) -> None:
        """Create or replace these items (BatchWriteItem, 25 a call; the last of an id wins)."""
        latest = {item.id: item for item in items}
        requests = [{"PutRequest": {"Item": state_item(entity, item)}} for item in latest.values()]
        self._batch_write(requests, entity, self.items_written, self.writes)

    def delete(self, entity: Entity, ids: Sequence[str]) -> None:
        """Delete these items (BatchWriteItem, 25 a call; absent ids are no error)."""
        requests = [
            {"DeleteRequest": {"Key": state_key(entity, record_id)}}
            for record_id in dict.fromkeys(ids)
        ]
        self._batch_write(requests, entity, self.items_deleted, self.deletes)

    def _batch_write(
        self,
        requests: list[dict[str, Any]],
        entity: Entity,
        counter: Counter[str],
        by_id: Counter[tuple[str, str]] | None,
    ) -> None:
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            pending = _Pending(requests[start : start + BATCH_WRITE_LIMIT])

            def attempt(pending: _Pending = pending) -> None:
                sent = pending.requests
                response: Any = self._call_batch(
                    "BatchWriteItem", self.client.batch_write_item, {self.table_name: sent}
                )
                pending.requests = list(
                    response.get("UnprocessedItems", {}).get(self.table_name, [])
                )
                counter[entity] += len(sent) - len(pending.requests)
                if by_id is not None:
                    left = {_request_id(request) for request in pending.requests}
                    by_id.update(
                        (entity, record_id)
                        for record_id in map(_request_id, sent)
                        if record_id not in left
                    )
                if pending.requests:
                    raise _UnprocessedError(f"{len(pending.requests)} item(s) unprocessed")

            self._drive("BatchWriteItem", attempt, pending)

    def _query(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query, page by page (LastEvaluatedKey)."""
        if self.page_size is not None and "Limit" not in kwargs:
            kwargs["Limit"] = self.page_size
        while True:
            response = self._call(operation, self.client.query, **kwargs)
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _query_partition(
        self, pk: str, *, projection: Sequence[str] | None = None, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        names = {"#pk": "pk"}
        if projection:
            names.update({f"#p{n}": name for n, name in enumerate(projection)})
            kwargs["ProjectionExpression"] = ", ".join(f"#p{n}" for n in range(len(projection)))
        return self._query(
            "Query",
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":pk": {"S": pk}},
            **kwargs,
        )

    def iter_ids(self, entity: Entity) -> Iterator[str]:
        """Every stored id of an entity (keys-only query, consistent, paginated)."""
        for item in self._query_partition(
            ENTITY_PK[entity], projection=["sk"], ConsistentRead=True
        ):
            yield item["sk"]["S"]

    def asset_types(self) -> dict[str, str]:
        """asset id -> asset type, for joining findings to their asset."""
        return {
            item["sk"]["S"]: item["assetType"]["S"]
            for item in self._query_partition(
                ENTITY_PK["assets"], projection=["sk", "assetType"], ConsistentRead=True
            )
            if "assetType" in item
        }

    def iter_vulnerabilities(self) -> Iterator[Vulnerability]:
        """Every stored finding, rebuilt from its item (asset type included), streamed."""
        for item in self._query_partition(ENTITY_PK["vulnerabilities"], ConsistentRead=True):
            yield vulnerability_from_item(item)

    def iter_remediations_since(self, since: datetime) -> Iterator[Remediation]:
        """Stored remediations with remediationDate >= since (gsi1, oldest first), streamed."""
        items = self._query(
            "Query",
            IndexName="gsi1",
            KeyConditionExpression="#pk = :pk AND #sk >= :since",
            ExpressionAttributeNames={"#pk": "gsi1pk", "#sk": "gsi1sk"},
            ExpressionAttributeValues={
                ":pk": {"S": REMDATE},
                ":since": {"S": format_datetime(since)},
            },
        )
        for item in items:
            yield remediation_from_item(item)

    def get_record(self, entity: Entity, record_id: str) -> Record | None:
        """One stored record by id (consistent read), or None."""
        item = self._get("GetItem", state_key(entity, record_id))
        return None if item is None else record_from_item(entity, item)

    # ----- RunStore -----

    def put_run(self, run: RunRecord) -> None:
        """Create or replace a run record."""
        self._call("PutItem", self.client.put_item, Item=run_item(run))

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run by id (consistent read)."""
        item = self._get("GetItem", run_key(run_id))
        return None if item is None else run_from_item(item)

    def latest_runs(self, limit: int) -> list[RunRecord]:
        """The most recent runs, newest first (run ids sort by start time)."""
        if limit <= 0:
            return []
        runs: list[RunRecord] = []
        items = self._query_partition(PK_RUN, ScanIndexForward=False, Limit=limit)
        for item in items:
            runs.append(run_from_item(item))
            if len(runs) >= limit:
                break
        return runs

    def _get(self, operation: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        response = self._call(operation, self.client.get_item, Key=key, ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else dict(item)

    def acquire_lock(
        self, run_id: str, now: datetime, lease_seconds: int, *, renew: bool = False
    ) -> None:
        """Take the lock for run_id until now + lease_seconds: when it is free or its lease has
        expired, and with ``renew`` also when run_id holds it; else RunInProgressError."""
        now_epoch = int(now.timestamp())
        condition = "attribute_not_exists(#pk) OR #lease < :now"
        names = {"#pk": "pk", "#lease": "lease_until"}
        values: dict[str, Any] = {":now": {"N": str(now_epoch)}}
        if renew:
            condition += " OR #run = :me"
            names["#run"] = "run_id"
            values[":me"] = {"S": run_id}
        for _ in range(2):
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=lock_item(run_id, now_epoch + lease_seconds),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except botocore.exceptions.ClientError as exc:
                if _code(exc) != _CONDITION_FAILED:
                    raise self._error("PutItem (lock)", exc) from exc
            except botocore.exceptions.BotoCoreError as exc:
                raise self._error("PutItem (lock)", exc) from exc
            else:
                return
            holder = self._get("GetItem (lock)", LOCK_KEY)
            if holder is not None:
                lease = holder.get("lease_until", {}).get("N")
                raise RunInProgressError(
                    holder.get("run_id", {}).get("S", "?"),
                    None if lease is None else datetime.fromtimestamp(int(float(lease)), UTC),
                )
            # Released between our write and our read: try once more.
        raise StorageError(
            f"DynamoDB table {self.table_name}: the sync lock changed hands twice while "
            f"{run_id} tried to take it",
            resource=self.table_name,
            operation="PutItem (lock)",
        )

    def release_lock(self, run_id: str) -> None:
        """Release the lock if run_id holds it (no error otherwise)."""
        if not self._delete_held(LOCK_KEY, run_id, "lock"):
            _LOG.info("lock not held by this run", extra={"run_id": run_id})

    def _delete_held(self, key: Mapping[str, Any], run_id: str, what: str) -> bool:
        """Delete the item at key if run_id holds it; False when it does not."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key=key,
                ConditionExpression="#run = :me",
                ExpressionAttributeNames={"#run": "run_id"},
                ExpressionAttributeValues={":me": {"S": run_id}},
            )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) != _CONDITION_FAILED:
                raise self._error(f"DeleteItem ({what})", exc) from exc
            return False
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(f"DeleteItem ({what})", exc) from exc
        return True

    def claim_next(self, run_id: str, now: datetime, lease_seconds: int, reason: str = "") -> str:
        """Name run_id the next run unless a live claim names another; the next run's id."""
        now_epoch = int(now.timestamp())
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    **NEXT_KEY,
                    "run_id": {"S": run_id},
                    "lease_until": {"N": str(now_epoch + lease_seconds)},
                    "reason": {"S": reason},
                },
                ConditionExpression="attribute_not_exists(#pk) OR #lease < :now OR #run = :me",
                ExpressionAttributeNames={"#pk": "pk", "#lease": "lease_until", "#run": "run_id"},
                ExpressionAttributeValues={":now": {"N": str(now_epoch)}, ":me": {"S": run_id}},
            )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) != _CONDITION_FAILED:
                raise self._error("PutItem (next run)", exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error("PutItem (next run)", exc) from exc
        else:
            return run_id
        # Another request named the next run first; a claim is only dropped when its run starts,
        # and then a new claim is welcome: name whoever holds it now.
        return self.next_run(now) or self.claim_next(run_id, now, lease_seconds, reason)

    def next_run(self, now: datetime) -> str | None:
        """The run named next by a live claim, or None (one consistent GetItem)."""
        request = self.next_request(now)
        return None if request is None else request[0]

    def next_request(self, now: datetime) -> tuple[str, str] | None:
        """The run named next by a live claim and its first request's reason, or None."""
        item = self._get("GetItem (next run)", NEXT_KEY)
        if item is None or int(float(item.get("lease_until", {}).get("N", "0"))) < now.timestamp():
            return None
        run_id = item.get("run_id", {}).get("S")
        reason = item.get("reason", {}).get("S", "")
        return None if run_id is None else (str(run_id), str(reason))

    def clear_next(self, run_id: str) -> None:
        """Drop the next-run claim if run_id holds it (its run has started)."""
        self._delete_held(NEXT_KEY, run_id, "next run")

    def last_complete(self) -> LastComplete | None:
        """The latest complete run, if any."""
        item = self._get("GetItem", LAST_COMPLETE_KEY)
        return None if item is None else last_complete_from_item(item)

    def set_last_complete(self, last: LastComplete) -> None:
        """Record a complete run."""
        self._call("PutItem", self.client.put_item, Item=last_complete_item(last))

    # ----- SnapshotStore and the API's reads -----

    def put_snapshot(
        self,
        snapshot: Mapping[str, Any],
        *,
        run_id: str,
        computed_at: datetime,
        with_deactivated: Mapping[str, Any] | None = None,
    ) -> None:
        """Store as latest and as the entry of computed_at's UTC day (both variants)."""
        items = snapshot_items(
            snapshot, run_id=run_id, computed_at=computed_at, with_deactivated=with_deactivated
        )
        for item in items:
            self._call("PutItem", self.client.put_item, Item=item)

    def get_snapshot(self, day: date | str | None = None) -> dict[str, Any] | None:
        """The latest snapshot (``day`` None) or that of one UTC day, as
        ``{"day", "run_id", "computed_at", "snapshot", "snapshot_with_deactivated"}``; None
        when there is none."""
        item = self._get("GetItem", snapshot_key(day))
        return None if item is None else snapshot_from_item(item)

    def snapshot_history(self, days: int, today: date | None = None) -> list[dict[str, Any]]:
        """The daily snapshots of the ``days`` UTC days up to ``today`` (default: the clock's),
        oldest first; days without a snapshot are left out."""
        if days <= 0:
            return []
        if today is None:
            today = self.clock().astimezone(UTC).date()
        elif isinstance(today, datetime):
            today = today.astimezone(UTC).date()
        first = today - timedelta(days=days - 1)
        items = self._query(
            "Query",
            KeyConditionExpression="#pk = :pk AND #sk BETWEEN :first AND :last",
            ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
            ExpressionAttributeValues={
                ":pk": {"S": PK_STATS},
                ":first": {"S": snapshot_sort_key(first)},
                ":last": {"S": snapshot_sort_key(today)},
            },
        )
        return [snapshot_from_item(item) for item in items]


def _request_id(request: Mapping[str, Any]) -> str:
    """The record id (sort key) a BatchWriteItem put or delete request is about."""
    if "PutRequest" in request:
        return str(request["PutRequest"]["Item"]["sk"]["S"])
    return str(request["DeleteRequest"]["Key"]["sk"]["S"])


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
