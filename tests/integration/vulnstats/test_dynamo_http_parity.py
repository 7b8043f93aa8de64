"""The API over moto with either DynamoDB client: the same answers, errors and retries.

botocore is the oracle: every route answers byte for byte alike, an unknown table fails with the
same message, and under faults injected by the loopback fault proxy both clients make the same
number of calls and end the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.retries.standard
import botocore.session
import pytest
from fakes.api_store import RecordingStarter, api_settings, raw_finding
from fakes.stores import MemoryRuns
from fault_proxy import ProxyFault, running_proxy

from api_fn.app import create_app
from lambdakit.clients import ClientOptions
from localstage.aws import MotoServer, aws_environment
from locate import DUMMY_CREDENTIALS
from vulnstats.dynamo import DynamoStore
from vulnstats.dynamo_http import DynamoHttpClient
from vulnstats.errors import StorageError
from vulnstats.models import AssetType, content_hash, parse_vulnerability
from vulnstats.ports import Checkpoint, Counts, LastComplete, RunRecord, RunStatus, StateItem
from vulnstats.queries import DynamoReader

if TYPE_CHECKING:
    from collections.abc import Iterator

    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from fault_proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sync-adapters")]

REGION = "us-east-1"
REPO_EVENTS = Path(__file__).resolve().parents[3] / "events"
NOW = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


def _botocore_client(endpoint_url: str) -> Any:
    """The client the API would make (lambdakit's options: standard retries, 3 attempts)."""
    return botocore.session.get_session().create_client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=endpoint_url,
        config=ClientOptions().to_config(),
        aws_access_key_id=DUMMY_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
        aws_session_token=DUMMY_CREDENTIALS["aws_session_token"],
    )


def _http_client(endpoint_url: str) -> DynamoHttpClient:
    return DynamoHttpClient.from_env(
        connect_timeout=2.0,
        read_timeout=10.0,
        environ=aws_environment(endpoint_url, REGION),
        sleep=lambda _: None,
    )


def _both_clients(endpoint_url: str) -> tuple[Any, Any]:
    """botocore's client (the oracle) first, then ours."""
    return _botocore_client(endpoint_url), _http_client(endpoint_url)


def _finding(n: int) -> StateItem:
    raw = raw_finding(
        f"vuln-{n:04d}",
        severity=SEVERITIES[n % 4],
        integrationId=("aws", "snyk", "qualys")[n % 3],
        isFixable=n % 2 == 0,
        remediateByDate=None if n % 5 == 0 else f"2026-{11 + n % 2}-{1 + n % 28:02d}T00:00:00Z",
        deactivateMetadata=(
            {"isVulnDeactivatedIndefinitely": True, "deactivatedUntilDate": None}
            if n % 17 == 0
            else None
        ),
    )
    asset = (AssetType.SERVER, AssetType.CONTAINER, None)[n % 3]
    record = parse_vulnerability(raw).with_asset_type(asset)
    return StateItem(record=record, raw=raw, content_hash=content_hash(raw))


@pytest.fixture(scope="module")
def table(moto: MotoServer, stack_resources: dict[str, str]) -> str:
    """The state table with findings, runs, snapshots and a complete run (written by botocore)."""
    name = stack_resources["StateTable"]
    store = DynamoStore(name, client=_botocore_client(moto.endpoint_url))
    store.write("vulnerabilities", [_finding(n) for n in range(150)])
    for day in range(3):
        computed = NOW - timedelta(days=day, hours=1)
        snapshot = {"open": 150 - day, "bySeverity": {"HIGH": 40 + day}, "note": "café"}
        store.put_snapshot(snapshot, run_id=f"run-{day}", computed_at=computed)
    for n in range(4):
        started = NOW - timedelta(days=n)
        store.put_run(
            RunRecord(
                run_id=f"{started:%Y%m%dT%H%M%SZ}-0000000{n}",
                status=RunStatus.SUCCEEDED,
                trigger="scheduled",
                started_at=started,
                updated_at=started + timedelta(minutes=3),
                finished_at=started + timedelta(minutes=3),
                checkpoint=Checkpoint(),
                counts=Counts(fetched=150 + n, written=n),
            )
        )
    store.set_last_complete(
        LastComplete(
            run_id="run-0",
            started_at=NOW - timedelta(hours=2),
            finished_at=NOW - timedelta(hours=1),
        )
    )
    return name


def _app(client: Any, table_name: str) -> APIGatewayRestResolver:
    store = DynamoStore(table_name, client=client)
    return create_app(
        api_settings(),
        DynamoReader(store),
        start_sync=RecordingStarter(),
        # POST /sync names its run with botocore whichever client reads: each app gets its own
        # claims, so both start from an empty claim and must answer alike.
        claims=MemoryRuns(),
        clock=lambda: NOW,
        new_run_id=lambda now: f"{now:%Y%m%dT%H%M%SZ}-0000abcd",
    )


@dataclass
class _Pair:
    oracle: APIGatewayRestResolver
    ours: APIGatewayRestResolver
    base: dict[str, Any]
    context: Any

    def both(self, method: str, path: str, query: dict[str, str] | None = None) -> Any:
        """Send one request to both apps; assert identical answers; return ours."""
        event = json.loads(json.dumps(self.base))
        event.update(httpMethod=method, path=path, resource=path, body=None)
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = (
            {k: [v] for k, v in query.items()} if query else None
        )
        theirs = self.oracle.resolve(json.loads(json.dumps(event)), self.context)
        ours = self.ours.resolve(json.loads(json.dumps(event)), self.context)
        assert ours == theirs, f"{method} {path} {query}"
        return ours


@pytest.fixture(scope="module")
def pair(moto: MotoServer, table: str) -> _Pair:
    base = json.loads((REPO_EVENTS / "api_get_health.json").read_text())
    return _Pair(
        _app(_botocore_client(moto.endpoint_url), table),
        _app(_http_client(moto.endpoint_url), table),
        base,
        _Context(),
    )


class _Context:
    function_name = "api"
    aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    memory_limit_in_mb = 256

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


FILTERS: list[dict[str, str]] = [
    {},
    {"limit": "7"},
    {"severity": "CRITICAL", "limit": "5"},
    {"severity": "high", "overdue": "true"},
    {"dueWithinDays": "14", "fixable": "true"},
    {"integrationId": "snyk", "assetType": "CONTAINER", "limit": "4"},
    {"includeDeactivated": "true", "overdue": "false"},
    {"cursor": "bm90LWEtY3Vyc29y"},
]


def test_every_route_answers_byte_for_byte_as_with_botocore(pair: _Pair) -> None:
    for path, query in [
        ("/health", None),
        ("/health/ready", None),
        ("/stats", None),
        ("/stats/history", {"days": "30"}),
        ("/stats/history", {"days": "0"}),
        ("/vulnerabilities/vuln-0003", None),
        ("/vulnerabilities/vuln-missing", None),
        ("/sync/runs", None),
        ("/sync/runs", {"limit": "2"}),
        ("/sync/runs/20261122T091500Z-00000000", None),
        ("/sync/runs/missing", None),
    ]:
        pair.both("GET", path, query)
    assert pair.both("POST", "/sync")["statusCode"] == 202


@pytest.mark.parametrize("query", FILTERS, ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()))
def test_every_listing_page_answers_byte_for_byte_as_with_botocore(
    pair: _Pair, query: dict[str, str]
) -> None:
    pages = 0
    while True:
        answer = pair.both("GET", "/vulnerabilities", query or None)
        pages += 1
        cursor = json.loads(answer["body"]).get("nextCursor")
        if answer["statusCode"] != 200 or not cursor or pages > 40:
            break
        query = {**query, "cursor": cursor}
    assert pages <= 40


def test_an_unknown_table_fails_with_the_same_message(moto: MotoServer) -> None:
    messages = []
    clients: tuple[Any, ...] = (
        _botocore_client(moto.endpoint_url),
        _http_client(moto.endpoint_url),
    )
    for client in clients:
        with pytest.raises(StorageError) as caught:
            DynamoStore("no-such-table", client=client).get_snapshot()
        messages.append((str(caught.value), caught.value.code))
    assert messages[0] == messages[1]
    assert messages[0][1] == "ResourceNotFoundException"


@pytest.fixture
def proxy(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    # botocore's backoff is real sleeping; the comparison is about calls, not waits.
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0
    )
    yield from running_proxy(moto.endpoint_url)


FAULTS = {
    "throttled-twice": ProxyFault("dynamodb", "GetItem", "throttle", times=2),
    "throttled-always": ProxyFault("dynamodb", "GetItem", "throttle", times=None),
    "500-once": ProxyFault("dynamodb", "GetItem", "error", status=500),
    "503-always": ProxyFault("dynamodb", "GetItem", "error", status=503, times=None),
    "validation": ProxyFault(
        "dynamodb", "GetItem", "error", status=400, code="ValidationException", times=None
    ),
    "dropped-once": ProxyFault("dynamodb", "GetItem", "drop"),
}


# GetItem requests the proxy saw for one read (botocore: 3 attempts at most, 400s not retried).
EXPECTED_CALLS = dict(zip(FAULTS.values(), (3, 3, 2, 3, 1, 2), strict=True))


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_under_injected_faults_both_clients_retry_alike(
    proxy: FaultProxy, table: str, fault: ProxyFault
) -> None:
    outcomes = []
    clients: tuple[Any, ...] = (
        _botocore_client(proxy.endpoint_url),
        _http_client(proxy.endpoint_url),
    )
    for client in clients:
        proxy.set_faults(fault)
        try:
            snapshot = DynamoStore(table, client=client).get_snapshot()
            outcome: tuple[str, str | None] = ("ok", None if snapshot is None else "snapshot")
        except StorageError as exc:
            outcome = ("error", exc.code)
        outcomes.append((outcome, proxy.calls["dynamodb:GetItem"]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] == EXPECTED_CALLS[fault]
