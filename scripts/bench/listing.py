"""500-item /vulnerabilities pages at several table sizes: the emulator's share against ours.

    PYTHONPATH=layers/shared:functions/api:scripts .venv/bin/python -m bench.listing \\
        [--sizes 3000 30000] [--pages 2]

For each size, one moto server gets the stack's table (template.yaml) and that many findings,
written with the sync's own adapter. The API's app (create_app over DynamoReader, as the handler
builds it) then serves 500-item pages for a few filters, with each DynamoDB client in turn. A page
is timed end to end (routing, Query calls, item decoding, serialisation). One run of it under
cProfile (the first, which also warms the connection) is split into the time spent waiting for
moto's answers (``http.client`` getresponse and read: the emulator, plus the loopback) and the
rest (ours: routing, signing or botocore's request and parsing, decoding, serialisation; cProfile
inflates this Python-heavy part, so it is an upper bound). Markdown rows go to
docs/performance.md.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from api_fn.app import create_app
from api_fn.settings import ApiSettings
from lambdakit.clients import ClientOptions
from localstage.aws import aws_environment, prepare_local_stack, start_moto
from locate import DUMMY_CREDENTIALS, REPO, TEMPLATE
from vulnstats.dynamo import DynamoStore
from vulnstats.dynamo_http import DynamoHttpClient
from vulnstats.models import AssetType, content_hash, parse_vulnerability
from vulnstats.ports import StateItem
from vulnstats.queries import DynamoReader

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

REGION: Final = "us-east-1"
NOW: Final = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
FILTERS: Final = {
    "no filter (table order)": {},
    "severity=HIGH (index key)": {"severity": "HIGH"},
    "integrationId=snyk (filter expression)": {"integrationId": "snyk"},
}
_SEVERITIES: Final = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


def _findings(count: int) -> list[StateItem]:
    items = []
    for n in range(count):
        due = NOW + timedelta(days=(n % 120) - 60)
        raw = {
            "id": f"f-{n:06d}",
            "name": f"CVE-2026-{n % 9999:04d}",
            "description": "benchmark finding " * 4,
            "integrationId": ("aws", "snyk", "qualys", "inspector")[n % 4],
            "targetId": f"asset-{n % 500}",
            "isFixable": n % 3 != 0,
            "severity": _SEVERITIES[(n * 7) % 4],
            "firstDetectedDate": "2026-06-01T00:00:00.000Z",
            "remediateByDate": due.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "packageIdentifier": f"pkg:pypi/lib{n % 300}@1.{n % 10}.0",
            "deactivateMetadata": None,
        }
        record = parse_vulnerability(raw).with_asset_type(AssetType.SERVER)
        items.append(StateItem(record=record, raw=raw, content_hash=content_hash(raw)))
    return items


def _clients(endpoint_url: str) -> dict[str, Any]:
    import botocore.session  # noqa: PLC0415 - the oracle side only

    return {
        "http": DynamoHttpClient.from_env(
            connect_timeout=2.0, read_timeout=30.0, environ=aws_environment(endpoint_url, REGION)
        ),
        "botocore": botocore.session.get_session().create_client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=endpoint_url,
            config=ClientOptions(read_timeout=30.0).to_config(),
            aws_access_key_id=DUMMY_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
        ),
    }


class _Counting:
    """Counts the Query calls of a page (the read budget at work)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queries = 0

    def get_item(self, **params: Any) -> Any:
        return self.client.get_item(**params)

    def query(self, **params: Any) -> Any:
        self.queries += 1
        return self.client.query(**params)


def _event(query: dict[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(
        (REPO / "events" / "api_list_vulnerabilities.json").read_text()
    )
    params = {**query, "limit": "500"}
    event["queryStringParameters"] = params
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()}
    return event


def _emulator_seconds(profile: cProfile.Profile) -> float:
    """Cumulative time in http.client's getresponse and HTTPResponse.read (waiting on moto)."""
    stats = pstats.Stats(profile)
    total = 0.0
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        if filename.endswith(os.path.join("http", "client.py")) and name in ("getresponse", "read"):
            total += row[3]
    return total


def _page(app: APIGatewayRestResolver, event: dict[str, Any]) -> int:
    answer = app.resolve(json.loads(json.dumps(event)), cast("Any", None))
    if answer["statusCode"] != 200:
        raise RuntimeError(f"page failed: {answer['body'][:300]}")
    return len(json.loads(answer["body"])["items"])


def _measure(table: str, endpoint_url: str, pages: int) -> list[dict[str, Any]]:
    settings = ApiSettings(table_name=table, sync_queue_url="unused", cache_ttl_seconds=0)
    rows = []
    for label, query in FILTERS.items():
        event = _event(query)
        for name, client in _clients(endpoint_url).items():
            counting = _Counting(client)
            app = create_app(
                settings,
                DynamoReader(DynamoStore(table, client=cast("Any", counting))),
                clock=lambda: NOW,
            )
            # The profiled page comes first and doubles as the warm-up (connection, caches).
            profile = cProfile.Profile()
            start = time.perf_counter()
            items = profile.runcall(_page, app, event)
            profiled_ms = (time.perf_counter() - start) * 1000
            emulator_ms = _emulator_seconds(profile) * 1000
            counting.queries = 0
            times = []
            for _ in range(pages):
                start = time.perf_counter()
                _page(app, event)
                times.append((time.perf_counter() - start) * 1000)
            queries = counting.queries // pages
            rows.append(
                {
                    "filter": label,
                    "client": name,
                    "items": items,
                    "queries": queries,
                    "page_ms_p50": round(statistics.median(times), 1),
                    "profiled_ms": round(profiled_ms, 1),
                    "moto_ms": round(emulator_ms, 1),
                    "ours_ms": round(profiled_ms - emulator_ms, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _run_size(size: int, pages: int) -> list[dict[str, Any]]:
    with start_moto("127.0.0.1", 0) as moto:
        _, created = prepare_local_stack(
            TEMPLATE,
            moto.endpoint_url,
            vanta_credentials={"client_id": "x", "client_secret": "y"},
            region=REGION,
        )
        table = created["StateTable"]
        writer = DynamoStore(table, client=_clients(moto.endpoint_url)["botocore"])
        start = time.perf_counter()
        writer.write("vulnerabilities", _findings(size))
        print(f"{size} findings written in {time.perf_counter() - start:.1f} s", flush=True)
        rows = _measure(table, moto.endpoint_url, pages)
    return [{"findings": size, **row} for row in rows]


def main() -> int:
    """Run every size and print a Markdown table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 30000])
    parser.add_argument("--pages", type=int, default=2, help="timed pages per filter and client")
    args = parser.parse_args()
    if args.pages < 1 or any(size < 1 for size in args.sizes):
        parser.error("--pages and --sizes must be positive")
    rows = [row for size in args.sizes for row in _run_size(size, args.pages)]
    print(
        "\n| findings | filter | client | items | Query calls | page p50 ms "
        "| profiled page: moto ms | ours ms |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['findings']} | {row['filter']} | {row['client']} | {row['items']} "
            f"| {row['queries']} | {row['page_ms_p50']} | {row['moto_ms']} | {row['ours_ms']} |"
        )
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
