"""`make dr-drill`: fail over between two local stages under Route 53's failover policy, timed.

A simulation of the policy, not of Route 53: two local stages stand for the regions (primary and
secondary, each with its own ports, state file, moto, stand-in and first sync); one health checker
per region polls its `/health/ready` every request interval and changes the region's status after
`FailureThreshold` consecutive failures or passes (Route 53 treats a new health check as healthy
until it knows better); the failover resolver answers with the primary while it is healthy, else
with a healthy secondary, else with the primary; clients keep an answer for the record's TTL. Time
runs `--compression` times faster than on AWS. The drill kills the primary (its API front first),
measures how long clients go unserved, and checks that the secondary's answers are fresh.

Route 53's figures (Route 53 Developer Guide, "How Amazon Route 53 determines whether a health
check is healthy"; API reference, HealthCheckConfig): a request interval of 10 or 30 s (default
30); a failure threshold of 1-10 (CloudFormation's default 3); an HTTPS check fails unless a TCP
connection is made within 4 s and a 2xx/3xx status arrives within 2 s of it; an endpoint is healthy
while more than 18 % of the checkers (spread over regions, uncoordinated) say so. The drill runs one
checker per region, so the 18 % aggregation is not simulated.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import requests

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from localstage.stage import LocalStage
    from localstage.vanta_data import Dataset

__all__ = [
    "DrillError",
    "DrillReport",
    "FailoverResolver",
    "HealthStatus",
    "Policy",
    "aws_rto_seconds",
    "first_sync",
    "main",
    "run_drill",
]

CONNECT_TIMEOUT_S: Final = 4.0  # Route 53: TCP connection within four seconds
RESPONSE_TIMEOUT_S: Final = 2.0  # and an HTTP status within two seconds after connecting
# Loopback processes on a shared machine are not network endpoints: a compressed timeout below
# this would fail healthy checks on a scheduling hiccup, so compression never shortens it further.
MIN_CHECK_TIMEOUT_S: Final = 0.5
# A client is not a health checker: it waits as long as an SDK would for an answer (a cold start
# of a second environment in the standby takes longer than a compressed check timeout).
CLIENT_TIMEOUT_S: Final = 10.0
REPO: Final = Path(__file__).resolve().parents[2]


class DrillError(Exception):
    """The drill could not run or its outcome is wrong; the message says what happened."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Route 53's failover policy as the template configures it (real seconds)."""

    request_interval_s: float = 30.0
    failure_threshold: int = 3
    ttl_s: float = 60.0

    @classmethod
    def from_template(cls, template: Path = REPO / "template.yaml") -> Policy:
        """The defaults of HealthCheckRequestInterval, HealthCheckFailureThreshold and
        FailoverRecordTtl."""
        from localstage.cfn import load_template  # noqa: PLC0415 - the CLI only

        parameters = load_template(template)["Parameters"]
        return cls(
            request_interval_s=float(parameters["HealthCheckRequestInterval"]["Default"]),
            failure_threshold=int(parameters["HealthCheckFailureThreshold"]["Default"]),
            ttl_s=float(parameters["FailoverRecordTtl"]["Default"]),
        )


def aws_rto_seconds(policy: Policy) -> tuple[float, float]:
    """(best, worst) seconds from an outage to clients served by the secondary, on AWS.

    Detection: the first failed check comes at most one interval after the outage (at once in the
    best case), the status changes at the threshold-th consecutive failure, each failure taking
    up to the 4 + 2 s timeouts; then a resolver may serve its cached answer for up to one TTL.
    """
    best = (policy.failure_threshold - 1) * policy.request_interval_s
    worst = (
        policy.failure_threshold * policy.request_interval_s
        + CONNECT_TIMEOUT_S
        + RESPONSE_TIMEOUT_S
        + policy.ttl_s
    )
    return best, worst


@dataclass
class HealthStatus:
    """One region's status under the failure threshold: flips after N consecutive results."""

    threshold: int
    healthy: bool = True  # a new health check counts as healthy until there is enough data
    streak: int = 0  # consecutive results that disagree with the current status
    checks: int = 0
    failures: int = 0

    def record(self, passed: bool) -> bool:
        """Count one check; True when this one changed the status."""
        self.checks += 1
        self.failures += not passed
        if passed == self.healthy:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak < self.threshold:
            return False
        self.healthy, self.streak = passed, 0
        return True


class FailoverResolver:
    """Answers like a failover record pair: the primary while healthy, else a healthy secondary,
    else the primary (every record unhealthy: Route 53 answers as if all were healthy)."""

    def __init__(self, primary: str, secondary: str, threshold: int) -> None:
        self.endpoints = {"primary": primary, "secondary": secondary}
        self.status = {name: HealthStatus(threshold) for name in self.endpoints}
        self._lock = threading.Lock()

    def record(self, name: str, passed: bool) -> bool:
        """A health checker's result for one region; True when the region's status changed."""
        with self._lock:
            return self.status[name].record(passed)

    def answer(self) -> tuple[str, str]:
        """(region name, endpoint) of the record a resolver would get now."""
        with self._lock:
            if self.status["primary"].healthy or not self.status["secondary"].healthy:
                return "primary", self.endpoints["primary"]
            return "secondary", self.endpoints["secondary"]


@dataclass(frozen=True, slots=True)
class Served:
    """One client request: when (s since the drill began), which region answered, the status."""

    at_s: float
    region: str
    status: int | None  # None: no answer (connection refused, timeout)
    computed_at: str | None = None


@dataclass
class DrillReport:
    """What the drill measured (wall seconds) and what it means on AWS (real seconds)."""

    compression: float
    policy: Policy
    killed_at_s: float = 0.0
    primary_unhealthy_at_s: float | None = None
    first_served_by_secondary_at_s: float | None = None
    requests: list[Served] = field(default_factory=list)
    secondary_data_age_s: int | None = None
    secondary_max_age_s: int | None = None
    secondary_matches_primary: bool = False
    failed_checks_before_switch: int = 0

    @property
    def detection_s(self) -> float | None:
        """Outage to the primary's status turning unhealthy."""
        found = self.primary_unhealthy_at_s
        return None if found is None else found - self.killed_at_s

    @property
    def recovery_s(self) -> float | None:
        """Outage to the first answer a client got from the secondary."""
        found = self.first_served_by_secondary_at_s
        return None if found is None else found - self.killed_at_s

    def summary(self) -> dict[str, Any]:
        """The figures, compressed and in real-time terms."""
        best, worst = aws_rto_seconds(self.policy)
        recovery, detection = self.recovery_s, self.detection_s
        return {
            "compression": self.compression,
            "policy": asdict(self.policy),
            "detection_s": detection,
            "recovery_s": recovery,
            "detection_real_s": None if detection is None else detection * self.compression,
            "recovery_real_s": None if recovery is None else recovery * self.compression,
            "aws_rto_best_s": best,
            "aws_rto_worst_s": worst,
            "failed_checks_before_switch": self.failed_checks_before_switch,
            "unanswered_requests": sum(1 for r in self.requests if r.status != 200),
            "requests": len(self.requests),
            "secondary_data_age_s": self.secondary_data_age_s,
            "secondary_max_age_s": self.secondary_max_age_s,
            "secondary_matches_primary": self.secondary_matches_primary,
        }


class _Drill:
    """The threads of one drill: a checker per region and one client, all on one clock."""

    def __init__(
        self,
        resolver: FailoverResolver,
        report: DrillReport,
        *,
        api_key: str,
        clock: Callable[[], float],
    ) -> None:
        policy, compression = report.policy, report.compression
        self.resolver, self.policy, self.report = resolver, policy, report
        self.interval = policy.request_interval_s / compression
        self.ttl = policy.ttl_s / compression
        self.timeout = max(
            MIN_CHECK_TIMEOUT_S, (CONNECT_TIMEOUT_S + RESPONSE_TIMEOUT_S) / compression
        )
        self.api_key = api_key
        self.clock = clock
        self.start = clock()
        self.stop = threading.Event()
        self.session = requests.Session()

    def now(self) -> float:
        return self.clock() - self.start

    def check(self, name: str) -> None:
        url = self.resolver.endpoints[name] + "/health/ready"
        while not self.stop.is_set():
            try:
                passed = requests.get(url, timeout=self.timeout).status_code < 400
            except requests.RequestException:
                passed = False
            changed = self.resolver.record(name, passed)
            if changed and name == "primary" and not passed:
                self.report.primary_unhealthy_at_s = self.now()
                self.report.failed_checks_before_switch = self.resolver.status[name].failures
            # Route 53 waits the interval after a response before the next request.
            self.stop.wait(self.interval)

    def client(self) -> None:
        cached: tuple[str, str] | None = None
        expires = 0.0
        while not self.stop.is_set():
            if cached is None or self.now() >= expires:
                cached, expires = self.resolver.answer(), self.now() + self.ttl
            region, endpoint = cached
            status, computed = None, None
            try:
                answer = requests.get(
                    endpoint + "/stats",
                    headers={"x-api-key": self.api_key},
                    timeout=CLIENT_TIMEOUT_S,
                )
                status = answer.status_code
                if status == 200:
                    computed = answer.json().get("computedAt")
            except requests.RequestException:
                pass
            served = Served(self.now(), region, status, computed)
            self.report.requests.append(served)
            first = self.report.first_served_by_secondary_at_s is None
            if first and region == "secondary" and status == 200:
                self.report.first_served_by_secondary_at_s = served.at_s
            self.stop.wait(self.interval / 4)


# What differs between two regions' snapshots of the same upstream data: which run computed it
# and when (the remediation window ends at the run's time).
_RUN_FIELDS: Final = frozenset({"runId", "computedAt", "windowStart", "windowEnd"})


def _facts(node: Any) -> Any:
    """A snapshot without the fields that name its run: what a client compares across regions."""
    if isinstance(node, dict):
        return {k: _facts(v) for k, v in node.items() if k not in _RUN_FIELDS}
    if isinstance(node, list):
        return [_facts(item) for item in node]
    return node


def _get_json(url: str, api_key: str | None = None) -> tuple[int, Any]:
    headers = {"x-api-key": api_key} if api_key else {}
    answer = requests.get(url, headers=headers, timeout=60)
    return answer.status_code, answer.json()


def run_drill(
    primary: LocalStage,
    secondary: LocalStage,
    *,
    policy: Policy,
    compression: float,
    deadline_s: float,
    kill_phase: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
) -> DrillReport:
    """Kill ``primary`` (both stages running and synced) and follow clients to ``secondary``.

    ``kill_phase`` places the kill within a check interval (0: as a check starts, which gives the
    best case of detection; 0.5: half an interval after one). Raises DrillError when clients are
    not served by the secondary within ``deadline_s`` (wall seconds), or when a stage is not ready
    to begin with.
    """
    if primary.api_key != secondary.api_key:
        raise DrillError("the two stages must share one API key, as the regions do")
    key = primary.api_key
    for name, stage in (("primary", primary), ("secondary", secondary)):
        status, body = _get_json(stage.urls["api"] + "/health/ready")
        if status != 200:
            raise DrillError(f"the {name} stage is not ready before the drill: {body}")
    status, before = _get_json(primary.urls["api"] + "/stats", key)
    if status != 200:
        raise DrillError(f"the primary serves no statistics before the drill: {before}")
    report = DrillReport(compression, policy)
    resolver = FailoverResolver(
        primary.urls["api"], secondary.urls["api"], policy.failure_threshold
    )
    drill = _Drill(resolver, report, api_key=key, clock=clock)
    threads = [
        threading.Thread(target=drill.check, args=(name,), name=f"check-{name}", daemon=True)
        for name in ("primary", "secondary")
    ]
    threads.append(threading.Thread(target=drill.client, name="client", daemon=True))
    for thread in threads:
        thread.start()
    try:
        # steady state: a few intervals of the primary serving, then the kill at the chosen phase
        drill.stop.wait((policy.failure_threshold + kill_phase) * drill.interval)
        report.killed_at_s = drill.now()
        primary.stop()  # the API front closes first: the region stops answering
        while report.first_served_by_secondary_at_s is None:
            if drill.now() - report.killed_at_s > deadline_s:
                raise DrillError(
                    f"clients were not served by the secondary within {deadline_s:g} s "
                    f"(primary status changed at {report.primary_unhealthy_at_s})"
                )
            drill.stop.wait(0.01)
        drill.stop.wait(2 * drill.interval)  # a few answers from the secondary
    finally:
        drill.stop.set()
        for thread in threads:
            thread.join(timeout=10)
    status, after = _get_json(secondary.urls["api"] + "/stats", key)
    _, ready = _get_json(secondary.urls["api"] + "/health/ready")
    report.secondary_matches_primary = status == 200 and _facts(after["snapshot"]) == _facts(
        before["snapshot"]
    )
    report.secondary_data_age_s = ready.get("dataAgeSeconds")
    report.secondary_max_age_s = ready.get("maxDataAgeSeconds")
    return report


def first_sync(stage: LocalStage) -> None:
    """Run a stage's first sync; DrillError when it fails."""
    result = stage.invoke("SyncFunction", {"action": "sync", "reason": "dr drill"})
    if result.function_error:
        raise DrillError(f"first sync of {stage.config.stack_name} failed: {result.payload!r}")


# ------------------------------------------------------------------ the command
_PORTS: Final = {"primary": 3200, "secondary": 3300}


def _stage(name: str, region: str, base: int, api_key: str, dataset: Dataset) -> LocalStage:
    from localstage.stage import LocalStage, StageConfig  # noqa: PLC0415 - heavy, CLI only

    config = StageConfig(
        api_port=base,
        invoke_port=base + 1,
        moto_port=base + 2,
        vanta_port=base + 3,
        stack_name=f"vulnstats-drill-{name}",
        region=region,
        state_file=REPO / ".local" / f"dr-{name}.json",
        dataset=dataset,
    )
    stage = LocalStage(config)
    stage.api_key = api_key  # one key for both regions (ApiKeySecretArn on AWS)
    return stage


def _render(report: DrillReport) -> str:
    s = report.summary()
    best, worst = s["aws_rto_best_s"], s["aws_rto_worst_s"]
    p = report.policy
    return "\n".join(
        [
            f"DR drill (simulation of Route 53's failover policy, {s['compression']:g}x "
            "compressed time)",
            f"policy: request interval {p.request_interval_s:g} s, failure threshold "
            f"{p.failure_threshold}, TTL {p.ttl_s:g} s",
            f"primary marked unhealthy {s['detection_s']:.2f} s after the kill "
            f"(= {s['detection_real_s']:.0f} s real), after {s['failed_checks_before_switch']} "
            "failed checks",
            f"clients served by the secondary {s['recovery_s']:.2f} s after the kill "
            f"(= {s['recovery_real_s']:.0f} s real); {s['unanswered_requests']} of "
            f"{s['requests']} client requests unanswered",
            f"on AWS, from the same figures: RTO {best:.0f}-{worst:.0f} s",
            f"secondary's answers: same snapshot as the primary's: "
            f"{s['secondary_matches_primary']}; data age {s['secondary_data_age_s']} s "
            f"(bound {s['secondary_max_age_s']} s)",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Start both stages, sync them, run the drill, print the figures; exit 2 on failure."""
    import secrets  # noqa: PLC0415

    from localstage.stage import StageError  # noqa: PLC0415
    from localstage.vanta_data import Dataset  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m ops.dr_drill", description=__doc__)
    parser.add_argument("--compression", type=float, default=30.0, help="time runs N x faster")
    parser.add_argument("--deadline", type=float, default=120.0, help="wall seconds to fail over")
    parser.add_argument(
        "--kill-phase",
        type=float,
        default=0.5,
        help="when in a check interval the kill comes (0-1)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.compression < 1 or not 0 <= args.kill_phase < 1:
        print(
            "dr_drill: --compression must be 1 or more, --kill-phase within [0, 1)", file=sys.stderr
        )
        return 2
    key = "local-" + secrets.token_urlsafe(24)
    # the same upstream data in both regions: Vanta is the one source of truth
    dataset = Dataset(seed=7, vulnerability_count=200, now=datetime.now(UTC))
    primary = _stage("primary", "us-east-1", _PORTS["primary"], key, dataset)
    secondary = _stage("secondary", "us-west-2", _PORTS["secondary"], key, dataset)
    try:
        with primary, secondary:
            for stage in (primary, secondary):
                first_sync(stage)
            report = run_drill(
                primary,
                secondary,
                policy=Policy.from_template(),
                compression=args.compression,
                deadline_s=args.deadline,
                kill_phase=args.kill_phase,
            )
    except (DrillError, StageError) as exc:
        print(f"dr_drill: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.summary(), indent=2) if args.json else _render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
