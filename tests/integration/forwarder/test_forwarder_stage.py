"""The metrics forwarder on the local stage: CloudWatch Logs subscriptions, EMF in moto, Datadog.

One stage with MetricsForwarder=datadog: the functions' EMF lines reach the Datadog stand-in
through the emulated log subscription and the real MetricsForwarderFunction, and CloudWatch
(moto) gets every metric whatever the stand-in does.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
import requests
from stage_support import LogCapture, invoke_client, isolated_stage

from lambdakit.emf import looks_like_emf, parse_emf
from localstage.aws import local_client
from localstage.datadog_standin import Fault
from localstage.vanta_data import Dataset

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("forwarder-stage")]

REPO: Final = Path(__file__).resolve().parents[3]
LOGS: Final = LogCapture()
WAIT_S: Final = 60.0


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("forwarder"),
        name="forwarder",
        dataset=Dataset(
            seed=5,
            now=datetime.now(UTC),
            vulnerability_count=200,
            asset_count=20,
            remediation_count=50,
        ),
        overrides={"MetricsForwarder": "datadog"},
        log_sink=LOGS,
    ) as running:
        assert running.runtime is not None
        # A short open interval, so the recovery step need not wait a minute.
        forwarder = running.runtime.function("MetricsForwarderFunction")
        running.runtime.update_environment(
            "MetricsForwarderFunction",
            {**forwarder.environment, "FORWARDER_BREAKER_RESET_SECONDS": "1"},
        )
        yield running


def _eventually[T](probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.2)
    forwarder = [line for name, line in LOGS.lines() if name == "MetricsForwarderFunction"]
    raise AssertionError(f"not within {WAIT_S:.0f} s: {what}; forwarder log: {forwarder[-8:]}")


def _emf_points(function: str, start: int = 0) -> Counter[tuple[str, float]]:
    return Counter(
        (f"vulnstats.{p.name}", p.value)
        for name, line in LOGS.lines(start)
        if name == function and looks_like_emf(line)
        for p in parse_emf(line)
    )


def _forwarder_reports() -> int:
    return sum(
        1
        for name, line in LOGS.lines()
        if name == "MetricsForwarderFunction" and line.startswith("REPORT ")
    )


def _received(stage: LocalStage, service: str) -> Counter[tuple[str, float]]:
    assert stage.datadog is not None
    return Counter(
        (s["metric"], p["value"])
        for s in stage.datadog.series
        if f"service:{service}" in s["tags"]
        for p in s["points"]
    )


def _arrived(stage: LocalStage, service: str, expected: Counter[tuple[str, float]]) -> bool | None:
    assert stage.logs is not None
    stage.logs.flush()
    return True if _received(stage, service) == expected else None


def _moto_sum(
    stage: LocalStage,
    name: str,
    service: str,
    *,
    namespace: str = "VulnStats",
    key: str = "service",
) -> float:
    cloudwatch = local_client("cloudwatch", stage.urls["aws"], stage.config.region)
    now = datetime.now(UTC)
    answer = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": key, "Value": service}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=3600,
        Statistics=["Sum"],
    )
    return float(sum(point["Sum"] for point in answer["Datapoints"]))


def test_a_sync_runs_metrics_reach_datadog_equal_to_the_emf_in_its_logs(stage: LocalStage) -> None:
    # given a sync run on the stage
    event = json.loads((REPO / "events" / "sync_manual.json").read_text())
    answer = invoke_client(stage).invoke(FunctionName="SyncFunction", Payload=json.dumps(event))
    assert json.loads(answer["Payload"].read())["status"] == "succeeded"
    emitted = _emf_points("SyncFunction")
    assert emitted[("vulnstats.SyncSuccess", 1.0)] == 1
    # when the subscription has delivered, then Datadog holds exactly the points of the EMF lines
    _eventually(lambda: _arrived(stage, "sync", emitted), "the sync's points at the stand-in")
    # and CloudWatch (moto) has them too, with Lambda's own count of the invocation
    assert _moto_sum(stage, "SyncSuccess", "sync") == 1.0
    assert (
        _moto_sum(stage, "Invocations", "SyncFunction", namespace="AWS/Lambda", key="FunctionName")
        >= 1
    )


def test_with_datadog_down_the_breaker_opens_cloudwatch_has_everything_and_replay_catches_up(
    stage: LocalStage,
) -> None:
    assert stage.datadog is not None
    assert stage.logs is not None
    stage.logs.flush()
    start = len(LOGS.lines())
    before = stage.datadog.requests
    # given the intake down while the API serves traffic
    stage.datadog.set_fault(Fault("status", status=503))
    statuses = []
    with requests.Session() as http:
        for _ in range(12):
            url, key = stage.urls["api"] + "/health", {"x-api-key": stage.api_key}
            statuses.append(http.get(url, headers=key).status_code)
            # One subscription delivery per request, each handled before the next: the breaker
            # is per execution environment, so overlapping deliveries would spread the failures.
            done = _forwarder_reports()
            stage.logs.flush()
            _eventually(
                lambda done=done: True if _forwarder_reports() > done else None,  # type: ignore[misc]
                "the forwarder handling a delivery",
            )
    # then the API answered every request: it never waits on the forwarder
    assert statuses == [200] * 12
    emitted = _emf_points("ApiFunction", start)
    real = sum(n for (name, _), n in emitted.items() if name == "vulnstats.RealInvocations")
    assert real == 12
    # and the forwarder's breaker opened after its failures
    stage.logs.flush()
    _eventually(
        lambda: (
            True
            if any(
                '"to_state":"open"' in line and "datadog-intake" in line
                for name, line in LOGS.lines(start)
                if name == "MetricsForwarderFunction"
            )
            else None
        ),
        "the forwarder's circuit opening",
    )
    assert stage.datadog.requests > before
    assert _received(stage, "api") & emitted != emitted  # not all delivered
    # and CloudWatch (moto) has every metric regardless
    assert _moto_sum(stage, "RealInvocations", "api") >= real
    # when the intake recovers and the forwarder replays its DLQ
    stage.datadog.set_fault(None)
    time.sleep(1.1)  # the breaker's open interval on this stage (FORWARDER_BREAKER_RESET_SECONDS)
    replay: dict[str, Any] = {"replay": {"maxMessages": 100}}
    result = stage.invoke("MetricsForwarderFunction", replay)
    assert result.function_error is None, result.payload
    # then everything that was missed has arrived
    _eventually(
        lambda: True if not (emitted - _received(stage, "api")) else None,
        "the missed API points after the replay",
    )
