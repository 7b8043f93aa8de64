"""S3 adapter: the raw page archive (gzip JSON) and the quarantine of rejected records."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

from lambdakit.clients import get_client
from lambdakit.lazy import lazy_import
from vulnstats.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import botocore.exceptions
    from mypy_boto3_s3 import S3Client

    from vulnstats.models import Entity
else:
    botocore = lazy_import("botocore.exceptions")

__all__ = ["S3Archive", "page_key", "quarantine_key", "quarantine_prefix", "run_prefix"]

_GZIP_MAGIC: Final = b"\x1f\x8b"


def run_prefix(entity: Entity, *, run_id: str, run_date: str) -> str:
    """``raw/<entity>/dt=<run_date>/run=<run_id>/``: every raw page of one run and entity."""
    return f"raw/{entity}/dt={run_date}/run={run_id}/"


def page_key(entity: Entity, *, run_id: str, run_date: str, number: int) -> str:
    """The key of one raw page."""
    return f"{run_prefix(entity, run_id=run_id, run_date=run_date)}page-{number}.json.gz"


def quarantine_prefix(entity: Entity, *, run_id: str, run_date: str) -> str:
    """The prefix of one run's rejected records of an entity."""
    return f"quarantine/{entity}/dt={run_date}/run={run_id}/"


def quarantine_key(entity: Entity, *, run_id: str, run_date: str, number: int) -> str:
    """The key of one page's rejected records."""
    return f"{quarantine_prefix(entity, run_id=run_id, run_date=run_date)}page-{number}.json"


class S3Archive:
    """Archive on one S3 bucket with the low-level client.

    ``client`` defaults to the environment's cached client (created on first use); ``page_size``
    sets ``MaxKeys`` when listing a run's pages (None: S3's 1000).
    ``objects_written`` counts the objects put, by kind (``raw``, ``quarantine``).
    """

    def __init__(
        self, bucket: str, *, client: S3Client | None = None, page_size: int | None = None
    ) -> None:
        """Bind the bucket; nothing is imported or created until the first call."""
        self.bucket = bucket
        self._client = client
        self.page_size = page_size
        self.objects_written: Counter[str] = Counter()

    @property
    def client(self) -> S3Client:
        """The S3 client (the injected one, or the environment's)."""
        if self._client is None:
            self._client = get_client("s3")
        return self._client

    def _call(self, operation: str, key: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            code: str | None = None
            if isinstance(exc, botocore.exceptions.ClientError):
                code = str(exc.response.get("Error", {}).get("Code", "")) or None
            raise StorageError(
                f"S3 bucket {self.bucket}: {operation} {key} failed: {exc}",
                resource=self.bucket,
                operation=operation,
                code=code,
            ) from exc

    def put_page(
        self, entity: Entity, *, run_id: str, run_date: str, number: int, body: bytes
    ) -> str:
        """Store one raw page body, gzip; returns its key (same body, same bytes: mtime 0)."""
        key = page_key(entity, run_id=run_id, run_date=run_date, number=number)
        self._call(
            "PutObject",
            key,
            self.client.put_object,
            Key=key,
            Body=gzip.compress(body, mtime=0),
            ContentType="application/gzip",
        )
        self.objects_written["raw"] += 1
        return key

    def put_quarantine(
        self,
        entity: Entity,
        *,
        run_id: str,
        run_date: str,
        number: int,
        rejects: Sequence[Mapping[str, Any]],
    ) -> str:
        """Store the rejected records of one page as one JSON object; returns the key.

        The object is ``{"entity", "run_id", "page", "count", "rejects": [...]}``, each reject as
        the caller gave it (its record and its reason).
        """
        key = quarantine_key(entity, run_id=run_id, run_date=run_date, number=number)
        document = {
            "entity": entity,
            "run_id": run_id,
            "page": number,
            "count": len(rejects),
            "rejects": [dict(reject) for reject in rejects],
        }
        self._call(
            "PutObject",
            key,
            self.client.put_object,
            Key=key,
            Body=json.dumps(document, ensure_ascii=False).encode(),
            ContentType="application/json",
        )
        self.objects_written["quarantine"] += 1
        return key

    def iter_archived_ids(self, entity: Entity, *, run_id: str, run_date: str) -> Iterator[str]:
        """Every record id in the run's archived pages of an entity, one page in memory at a
        time (duplicates possible; records without a string id are skipped)."""
        for key in self._iter_keys(run_prefix(entity, run_id=run_id, run_date=run_date)):
            if key.endswith(".json.gz"):
                yield from _page_ids(key, self._read(key))

    def has_quarantine(self, entity: Entity, *, run_id: str, run_date: str) -> bool:
        """Whether the run quarantined any record of an entity (one ListObjectsV2 of one key)."""
        prefix = quarantine_prefix(entity, run_id=run_id, run_date=run_date)
        response = self._call(
            "ListObjectsV2", prefix, self.client.list_objects_v2, Prefix=prefix, MaxKeys=1
        )
        return bool(response.get("KeyCount", len(response.get("Contents", []))))

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        kwargs: dict[str, Any] = {"Prefix": prefix}
        if self.page_size is not None:
            kwargs["MaxKeys"] = self.page_size
        while True:
            response = self._call("ListObjectsV2", prefix, self.client.list_objects_v2, **kwargs)
            for entry in response.get("Contents", []):
                yield entry["Key"]
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token

    def _read(self, key: str) -> bytes:
        response = self._call("GetObject", key, self.client.get_object, Key=key)
        try:
            data: bytes = response["Body"].read()
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageError(
                f"S3 bucket {self.bucket}: GetObject {key} failed while reading: {exc}",
                resource=self.bucket,
                operation="GetObject",
            ) from exc
        # A client that honours Content-Encoding may already have inflated the body.
        return gzip.decompress(data) if data.startswith(_GZIP_MAGIC) else data


def _page_ids(key: str, body: bytes) -> Iterator[str]:
    try:
        page = json.loads(body)
        records = page["results"]["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"archived page {key} has no results.data list: {exc}") from exc
    if not isinstance(records, list):
        raise StorageError(f"archived page {key}: results.data is not a list")
    for record in records:
        if isinstance(record, dict):
            record_id = record.get("id")
            if isinstance(record_id, str) and record_id:
                yield record_id
