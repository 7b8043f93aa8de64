"""`make dr-cost`: the standby region's monthly cost by part, for template.yaml and samconfig.toml.

The standby (samconfig `dr`) runs its own complete pipeline from Vanta and serves nothing while
the primary is healthy, so its month is: its own syncs at its own schedule, its table and archive,
the warming strategy it deploys with, Route 53's health checks of its readiness endpoint (and the
requests they send it), the DNS queries of the failover name, alarms, dashboard, Lambda Insights,
secret replicas and the operations key; and, when the primary replicates its raw archive here,
the replication. A part is one entry of ``PARTS``: a function from the inputs to a line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from localstage.cfn import TemplateError
from localstage.intrinsics import open_template
from localstage.template import load_stack
from locate import SAMCONFIG, TEMPLATE, LocateError, samconfig_environment
from ops.aws_prices import (
    PRICE_REGION,
    LambdaPriceTable,
    PriceError,
    lambda_price_table,
    service_price,
)
from ops.warming_model import (
    MONTH_HOURS,
    WEEK_HOURS,
    Assumptions,
    CostInputError,
    TrafficProfile,
    WarmingSettings,
    advise,
    read_settings,
    ticks_per_hour,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "PARTS",
    "DrAssumptions",
    "Estimate",
    "Line",
    "Standby",
    "estimate",
    "main",
    "read_standby",
]

# Valid stand-ins for samconfig's REPLACE_ placeholders: the cost depends on whether a value is
# set, never on which value it is.
_STAND_INS: Final = {
    "VantaSecretArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:vanta-AbCdEf",
    "ApiKeySecretArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:key-AbCdEf",
    "ApiDomainName": "vulnstats.example.com",
    "ApiCertificateArn": (
        "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    ),
    "HostedZoneId": "Z0123456789EXAMPLE",
    "ArchiveReplicaBucketArn": "arn:aws:s3:::vulnstats-dr-archive-example",
}
# Route 53's health checkers are spread over regions and do not coordinate: with a 30 s interval
# an endpoint receives a request "about every two seconds" on average (AWS Cloud Map API
# reference, HealthCheckConfig, "Request interval"); a 10 s interval sends three times as many.
_SECONDS_BETWEEN_CHECKS_AT_30: Final = 2.0


# Lambda's SQS event source keeps long-polling the queue whether or not it holds messages; every
# ReceiveMessage, empty or not, is a billed request. Its pollers are not documented for standard
# mode: 5 pollers each waiting the 20 s maximum is the assumption (DrAssumptions).
_LONG_POLL_SECONDS: Final = 20.0


@dataclass(frozen=True, slots=True)
class DrAssumptions:
    """Figures the template cannot give; the README's cost example uses the same ones."""

    sync_run_seconds: float = 60.0  # billed duration of one run (10,000 findings)
    pages_per_run: float = 100.0  # raw pages archived per run (72,000 PUTs / 720 runs)
    mb_per_run: float = 4.2  # gzip pages per run (3 GB / 720 runs)
    changed_items_per_run: float = 100.0  # about 1 % of 10,000 items change between runs
    bookkeeping_writes_per_run: float = 20.0  # run record, checkpoints, lock, snapshots
    check_billed_ms: float = 10.0  # billed duration of one /health/ready (one GetItem)
    api_requests_per_month: float = 100_000.0  # clients' requests: at most one DNS query each
    insights_metrics_per_function: float = 8.0
    sqs_pollers: float = 5.0  # Lambda's long-polling connections to the SyncRequests queue
    sqs_requests_per_run: float = 6.0  # send, receive, delete, visibility changes, continuation


@dataclass(frozen=True, slots=True)
class Standby:
    """What template.yaml with the standby's (and the primary's) samconfig overrides says."""

    config_env: str
    region: str
    architecture: str
    sync_memory_mb: int
    sync_schedule: str
    function_count: int
    failover_member: bool
    health_check_interval_s: int
    insights: bool
    shared_api_key: bool
    alarm_metrics: int
    warming: WarmingSettings
    primary_env: str
    primary_schedule: str
    primary_replicates_here: bool

    def runs_per_month(self, schedule: str | None = None) -> float:
        """Runs a month of a schedule (default: the standby's sync schedule)."""
        week = ticks_per_hour(schedule or self.sync_schedule)
        return sum(week) * MONTH_HOURS / WEEK_HOURS


@dataclass(frozen=True, slots=True)
class Line:
    """One part's month: how it is counted and what it costs; ``counted`` False for an option
    the current settings leave off (shown in parentheses, not in the total)."""

    part: str
    basis: str
    usd: float
    counted: bool = True


@dataclass(frozen=True, slots=True)
class Estimate:
    """Every part's line and the total of the counted ones."""

    standby: Standby
    lines: tuple[Line, ...]

    @property
    def total_usd(self) -> float:
        """The standby's month: the counted lines summed."""
        return sum(line.usd for line in self.lines if line.counted)


type Part = Callable[[Standby, DrAssumptions, LambdaPriceTable], Line]


def _usd(name: str) -> float:
    return service_price(name).usd


def _lambda_usd(prices: LambdaPriceTable, invocations: float, gb_seconds: float) -> float:
    return invocations / 1e6 * prices.request_per_million_usd + gb_seconds * prices.gb_second_usd


# ------------------------------------------------------------------ the parts
def sync_part(s: Standby, a: DrAssumptions, prices: LambdaPriceTable) -> Line:
    """The standby's own sync runs, at its own schedule."""
    runs = s.runs_per_month()
    gb_s = runs * a.sync_run_seconds * s.sync_memory_mb / 1024
    return Line(
        "SyncFunction",
        f"{runs:,.0f} runs ({s.sync_schedule}) x {a.sync_run_seconds:g} s x "
        f"{s.sync_memory_mb} MB = {gb_s:,.0f} GB-s",
        _lambda_usd(prices, runs, gb_s),
    )


def health_check_traffic_part(s: Standby, a: DrAssumptions, prices: LambdaPriceTable) -> Line:
    """What Route 53's checkers cost the standby's API: every check is a real request."""
    if not s.failover_member:
        return Line("health check requests", "no health check (FailoverRole NONE)", 0.0)
    per_second = (s.health_check_interval_s / 30) * _SECONDS_BETWEEN_CHECKS_AT_30
    requests = MONTH_HOURS * 3600 / per_second
    gb_s = requests * a.check_billed_ms / 1000 * s.warming.api_memory_mb / 1024
    usd = (
        requests / 1e6 * _usd("api_gateway_rest_million")
        + _lambda_usd(prices, requests, gb_s)
        + requests / 1e6 * _usd("dynamodb_read_million")  # one consistent GetItem: 1 RRU
    )
    return Line(
        "health check requests",
        f"one /health/ready every {per_second:g} s on average = {requests:,.0f} requests: "
        "API Gateway, ApiFunction, one GetItem each",
        usd,
    )


def warming_part(s: Standby, _a: DrAssumptions, prices: LambdaPriceTable) -> Line:
    """The standby's warming strategy with no traffic of its own (ops.warming_cost's model)."""
    idle = TrafficProfile(weekday=(0.0,) * 24, weekend=(0.0,) * 24, description="standby")
    strategy = s.warming.deployed_strategy
    advice = advise(s.warming, idle, Assumptions(), prices, strategies=(strategy,))
    (only,) = advice.estimates
    return Line(
        f"warming ({strategy})", "make warming-cost's model with no traffic", only.total_usd
    )


def table_part(s: Standby, a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """Writes of the standby's own runs (change detection keeps them few)."""
    writes = s.runs_per_month() * (a.changed_items_per_run + a.bookkeeping_writes_per_run)
    return Line(
        "DynamoDB writes",
        f"{writes:,.0f} writes ({a.changed_items_per_run:g} changed items + "
        f"{a.bookkeeping_writes_per_run:g} bookkeeping per run); storage under $0.01",
        writes / 1e6 * _usd("dynamodb_write_million"),
    )


def archive_part(s: Standby, a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """The standby's own raw pages."""
    runs = s.runs_per_month()
    puts, gb = runs * a.pages_per_run, runs * a.mb_per_run / 1024
    return Line(
        "S3 archive",
        f"{puts:,.0f} PUTs, {gb:.2f} GB written a month",
        puts / 1000 * _usd("s3_put_thousand") + gb * _usd("s3_standard_gb_month"),
    )


def replication_part(s: Standby, a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """The primary's raw pages replicated here: transfer, the replicas' PUTs and storage."""
    runs = s.runs_per_month(s.primary_schedule)
    puts, gb = runs * a.pages_per_run, runs * a.mb_per_run / 1024
    usd = (
        gb * _usd("inter_region_transfer_gb")
        + puts / 1000 * _usd("s3_put_thousand")
        + gb * _usd("s3_standard_gb_month")
    )
    state = "on" if s.primary_replicates_here else f"off in {s.primary_env}"
    return Line(
        "archive replication",
        f"{state}: {s.primary_env}'s {puts:,.0f} pages, {gb:.2f} GB a month "
        "(transfer, PUTs, storage)",
        usd,
        counted=s.primary_replicates_here,
    )


def route53_part(s: Standby, _a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """The standby's health check: basic, HTTPS, and the fast interval when chosen."""
    if not s.failover_member:
        return Line("Route 53 health check", "none (FailoverRole NONE)", 0.0)
    features = 1 + (s.health_check_interval_s == 10)
    return Line(
        "Route 53 health check",
        f"basic + {features} optional feature(s) (HTTPS"
        + (", 10 s interval" if features > 1 else "")
        + "); the 50 free checks of AWS endpoints not applied",
        _usd("route53_health_check") + features * _usd("route53_health_check_feature"),
    )


def dns_part(s: Standby, a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """Queries of the failover name: at most one per client request (resolvers cache by TTL)."""
    if not s.failover_member:
        return Line("DNS queries", "no failover record", 0.0)
    return Line(
        "DNS queries",
        f"at most {a.api_requests_per_month:,.0f} standard queries; the hosted zone "
        f"(${_usd('route53_hosted_zone'):.2f}) already holds the domain",
        a.api_requests_per_month / 1e6 * _usd("route53_queries_million"),
    )


def queue_part(s: Standby, a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """The SyncRequests queue: Lambda's pollers' receives (mostly empty) and each run's requests."""
    polls = a.sqs_pollers * MONTH_HOURS * 3600 / _LONG_POLL_SECONDS
    requests = polls + s.runs_per_month() * a.sqs_requests_per_run
    return Line(
        "SQS (SyncRequests)",
        f"{a.sqs_pollers:g} pollers x one {_LONG_POLL_SECONDS:g} s receive each = {polls:,.0f} "
        f"receives + {a.sqs_requests_per_run:g} requests a run",
        requests / 1e6 * _usd("sqs_standard_million"),
    )


def alarms_part(s: Standby, _a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """Every alarm of the template, billed per metric it watches."""
    return Line(
        "CloudWatch alarms",
        f"{s.alarm_metrics} alarm metrics",
        s.alarm_metrics * _usd("cloudwatch_alarm_metric"),
    )


def dashboard_part(_s: Standby, _a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """The stack's one dashboard."""
    return Line("dashboard", "one dashboard", _usd("cloudwatch_dashboard"))


def insights_part(s: Standby, a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """Lambda Insights' metrics, per function."""
    metrics = a.insights_metrics_per_function * s.function_count if s.insights else 0.0
    return Line(
        "Lambda Insights",
        f"{metrics:g} metrics ({s.function_count} functions)" if s.insights else "off",
        metrics * _usd("cloudwatch_metric"),
    )


def secrets_part(s: Standby, _a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """Replicas of the Vanta secret and of the shared API key's secret."""
    count = 1 + s.shared_api_key
    return Line(
        "Secrets Manager",
        f"{count} secret replica(s)",
        count * _usd("secrets_manager_secret"),
    )


def kms_part(_s: Standby, _a: DrAssumptions, _prices: LambdaPriceTable) -> Line:
    """The operations key (alarm topic, dead-letter queue)."""
    return Line("KMS", "the stack's customer managed key", _usd("kms_key"))


PARTS: Final[tuple[Part, ...]] = (
    sync_part,
    health_check_traffic_part,
    warming_part,
    table_part,
    archive_part,
    replication_part,
    route53_part,
    dns_part,
    queue_part,
    alarms_part,
    dashboard_part,
    insights_part,
    secrets_part,
    kms_part,
)
NOT_COUNTED: Final = (
    "SQS's free tier (1 million requests a month per account) that would absorb the queue's "
    "line; the dead-letter queue and the alarm topic cost nothing at rest",
    "CloudWatch Logs ingestion and storage beyond Lambda Insights; KMS and Secrets Manager "
    "requests (a few thousand a month)",
    "the primary's own health check and its requests (the same figures again, billed there)",
    "traffic after a failover: the primary's requests move to the standby, they are not added",
    "free tiers, Savings Plans; the API Gateway custom domain and the ACM certificate have no "
    "charge of their own",
)


def estimate(
    standby: Standby,
    assumptions: DrAssumptions | None = None,
    parts: Sequence[Part] = PARTS,
) -> Estimate:
    """Every part's line for the standby; Lambda at the table's us-east-1 prices."""
    prices = lambda_price_table(standby.architecture, PRICE_REGION)
    chosen = assumptions or DrAssumptions()
    return Estimate(standby, tuple(part(standby, chosen, prices) for part in parts))


# ------------------------------------------------------------------ inputs
def _with_stand_ins(overrides: Mapping[str, str]) -> dict[str, str]:
    return {
        name: _STAND_INS.get(name, value) if value.startswith("REPLACE") else value
        for name, value in overrides.items()
    }


def _alarm_metrics(resources: Mapping[str, Mapping[str, Any]]) -> int:
    """Metrics watched by the alarms the parameters deploy (a metric-math alarm: each metric)."""
    total = 0
    for resource in resources.values():
        if resource.get("Type") == "AWS::CloudWatch::Alarm":
            metrics = resource.get("Properties", {}).get("Metrics")
            total += sum(1 for m in metrics if "MetricStat" in m) if metrics else 1
    return total


def read_standby(
    config_env: str,
    primary_env: str,
    *,
    template_path: Path = TEMPLATE,
    samconfig: Path = SAMCONFIG,
) -> Standby:
    """The standby's settings from the template and both samconfig environments."""
    try:
        standby_env = samconfig_environment(config_env, samconfig)
        primary_env_config = samconfig_environment(primary_env, samconfig)
    except LocateError as exc:
        raise CostInputError(str(exc)) from exc
    region = standby_env.region or PRICE_REGION
    overrides = _with_stand_ins(standby_env.parameter_overrides)
    try:
        stack = load_stack(template_path, overrides=overrides, region=region)
        resolved = open_template(template_path, overrides=overrides, region=region)
        primary = open_template(
            template_path,
            overrides=_with_stand_ins(primary_env_config.parameter_overrides),
            region=primary_env_config.region or PRICE_REGION,
        )
    except TemplateError as exc:
        raise CostInputError(str(exc)) from exc
    parameters = resolved.parameter_texts
    return Standby(
        config_env=config_env,
        region=region,
        architecture=parameters["Architecture"],
        sync_memory_mb=stack.functions["SyncFunction"].memory_mb,
        sync_schedule=parameters["SyncSchedule"],
        function_count=len(stack.functions),
        failover_member="ApiHealthCheck" in resolved.resources,
        health_check_interval_s=int(parameters["HealthCheckRequestInterval"]),
        insights=parameters["LambdaInsightsEnabled"] == "true",
        shared_api_key="SharedApiKey" in resolved.resources,
        alarm_metrics=_alarm_metrics(resolved.resources),
        warming=read_settings(template_path, overrides, region),
        primary_env=primary_env,
        primary_schedule=primary.parameter_texts["SyncSchedule"],
        primary_replicates_here="ArchiveReplicationRole" in primary.resources,
    )


# ------------------------------------------------------------------ output
def render(result: Estimate) -> str:
    """The table `make dr-cost` prints."""
    s = result.standby
    lines = [
        f"Standby region cost: samconfig env {s.config_env!r} ({s.region}), primary "
        f"{s.primary_env!r}; template.yaml as it is",
        "",
        f"{'part':<24} {'USD/month':>10}  how it is counted",
    ]
    for line in result.lines:
        usd = f"{line.usd:.2f}" if line.counted else f"({line.usd:.2f})"
        lines.append(f"{line.part:<24} {usd:>10}  {line.basis}")
    lines += [
        f"{'total':<24} {result.total_usd:>10.2f}",
        "",
        f"Prices: scripts/ops/aws_prices.py, {PRICE_REGION} list prices (the table holds no "
        f"other region; check {s.region}'s), first tier, no free tier.",
        "Not counted:",
        *(f"  - {text}" for text in NOT_COUNTED),
    ]
    return "\n".join(lines)


def _json(result: Estimate) -> str:
    return json.dumps(
        {
            "standby": asdict(result.standby),
            "lines": [asdict(line) for line in result.lines],
            "total_usd": round(result.total_usd, 4),
            "price_region": PRICE_REGION,
            "not_counted": list(NOT_COUNTED),
        },
        indent=2,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.dr_cost", description=__doc__)
    parser.add_argument("--config-env", default="dr", help="the standby's samconfig environment")
    parser.add_argument("--primary-env", default="prod", help="the primary's environment")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`make dr-cost`: print the estimate; exit 2 with one line on bad input."""
    args = _parser().parse_args(argv)
    # The template reader warns about what a local run skips (Insights layers); not a cost matter.
    logging.getLogger("localstage").setLevel(logging.ERROR)
    try:
        result = estimate(read_standby(args.config_env, args.primary_env))
    except (CostInputError, PriceError) as exc:
        print(f"dr_cost: {exc}", file=sys.stderr)
        return 2
    print(_json(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
