"""S3Archive against a moto server holding the template's archive bucket."""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING, Any

import pytest

from localstage.aws import MotoServer, local_client
from vulnstats.archive import S3Archive
from vulnstats.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sync-adapters")]

REGION = "us-east-1"
RUN_ID = "20261122T060000Z-0badcafe"
RUN_DATE = "2026-11-22"


@pytest.fixture(scope="module")
def bucket(stack_resources: dict[str, str]) -> str:
    return stack_resources["ArchiveBucket"]


@pytest.fixture(scope="module")
def client(moto: MotoServer) -> S3Client:
    created: S3Client = local_client("s3", moto.endpoint_url, REGION)
    return created


@pytest.fixture
def archive(client: S3Client, bucket: str) -> S3Archive:
    return S3Archive(bucket, client=client)


def page_body(ids: list[Any], cursor: str | None = None) -> bytes:
    """A page as Vanta sends it: results.data and results.pageInfo."""
    records = [{"id": record_id, "name": f"n-{record_id}"} for record_id in ids]
    page_info = {"endCursor": cursor, "hasNextPage": cursor is not None}
    return json.dumps({"results": {"data": records, "pageInfo": page_info}}).encode()


def test_given_a_page_when_archived_then_gzip_of_the_exact_body_under_the_run_prefix(
    archive: S3Archive, client: S3Client, bucket: str
) -> None:
    body = page_body(["a-1", "a-2"], cursor="c1")

    key = archive.put_page("assets", run_id=RUN_ID, run_date=RUN_DATE, number=1, body=body)

    assert key == f"raw/assets/dt={RUN_DATE}/run={RUN_ID}/page-1.json.gz"
    stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert gzip.decompress(stored) == body
    assert archive.objects_written["raw"] == 1


def test_given_archived_pages_when_listing_ids_then_every_page_of_this_run_only(
    client: S3Client, bucket: str
) -> None:
    # Two keys a listing call, so the run's seven pages need four list calls.
    archive = S3Archive(bucket, client=client, page_size=2)
    run_id = "20261122T070000Z-00000001"
    expected: list[str] = []
    for number in range(1, 8):
        ids = [f"v-{number}-{n}" for n in range(3)]
        expected += ids
        body = page_body(ids)
        archive.put_page(
            "vulnerabilities", run_id=run_id, run_date=RUN_DATE, number=number, body=body
        )
    archive.put_page(
        "vulnerabilities", run_id=run_id + "x", run_date=RUN_DATE, number=1, body=page_body(["x"])
    )
    archive.put_page("assets", run_id=run_id, run_date=RUN_DATE, number=1, body=page_body(["y"]))

    found = archive.iter_archived_ids("vulnerabilities", run_id=run_id, run_date=RUN_DATE)

    assert sorted(found) == sorted(expected)


def test_given_records_without_usable_ids_when_listing_then_they_are_skipped(
    archive: S3Archive,
) -> None:
    run_id = "20261122T080000Z-00000002"
    body = json.dumps({"results": {"data": [{"id": "ok"}, {"id": 7}, "junk", {"name": "x"}]}})
    archive.put_page("remediations", run_id=run_id, run_date=RUN_DATE, number=1, body=body.encode())
    archive.put_page("remediations", run_id=run_id, run_date=RUN_DATE, number=2, body=page_body([]))

    ids = list(archive.iter_archived_ids("remediations", run_id=run_id, run_date=RUN_DATE))

    assert ids == ["ok"]


def test_given_a_run_without_pages_when_listing_then_no_ids(archive: S3Archive) -> None:
    assert list(archive.iter_archived_ids("assets", run_id="none", run_date=RUN_DATE)) == []


def test_given_a_page_that_is_not_a_listing_when_listing_then_storage_error_names_the_key(
    archive: S3Archive,
) -> None:
    run_id = "20261122T090000Z-00000003"
    key = archive.put_page("assets", run_id=run_id, run_date=RUN_DATE, number=4, body=b"<html>")

    with pytest.raises(StorageError, match=key):
        list(archive.iter_archived_ids("assets", run_id=run_id, run_date=RUN_DATE))


def test_given_rejected_records_when_quarantined_then_one_json_object_with_each_reason(
    archive: S3Archive, client: S3Client, bucket: str
) -> None:
    rejects: list[dict[str, Any]] = [
        {"id": "v-9", "reason": "severity: unknown value 'SEVERE'", "record": {"id": "v-9"}},
        {"id": None, "reason": "id: missing", "record": {"name": "ünnamed"}},
    ]

    key = archive.put_quarantine(
        "vulnerabilities", run_id=RUN_ID, run_date=RUN_DATE, number=3, rejects=rejects
    )

    assert key == f"quarantine/vulnerabilities/dt={RUN_DATE}/run={RUN_ID}/page-3.json"
    stored = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored == {
        "entity": "vulnerabilities",
        "run_id": RUN_ID,
        "page": 3,
        "count": 2,
        "rejects": rejects,
    }
    assert archive.objects_written["quarantine"] == 1


def test_given_quarantined_records_when_asked_then_only_that_run_and_entity_has_them(
    archive: S3Archive,
) -> None:
    rejects = [{"id": "r-1", "reason": "severity: unknown value 'SEVERE'", "record": {}}]
    archive.put_quarantine(
        "remediations", run_id=RUN_ID, run_date=RUN_DATE, number=2, rejects=rejects
    )

    assert archive.has_quarantine("remediations", run_id=RUN_ID, run_date=RUN_DATE)
    assert not archive.has_quarantine("assets", run_id=RUN_ID, run_date=RUN_DATE)
    assert not archive.has_quarantine("remediations", run_id="other-run", run_date=RUN_DATE)


def test_given_no_such_bucket_when_archiving_then_storage_error_names_bucket_and_call(
    client: S3Client,
) -> None:
    missing = S3Archive("no-such-bucket", client=client)

    with pytest.raises(StorageError, match="no-such-bucket: PutObject raw/assets/") as caught:
        missing.put_page("assets", run_id=RUN_ID, run_date=RUN_DATE, number=1, body=b"{}")
    assert caught.value.code == "NoSuchBucket"
