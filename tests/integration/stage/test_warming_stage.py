"""Warming on the local stage: the real warmer pings the real API through the Invoke API.

The stage runs with the `warmer` strategy and the functions' Lambda calls pointed at its Invoke
API (as `make local` runs it), so every ping crosses botocore, the Invoke API and the local
runtime's concurrency limits exactly as on Lambda.
"""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
from stage_support import invoke_client, isolated_stage

from localstage.report_line import ReportLine
from localstage.vanta_data import Dataset

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("warming")]

EVENTS: Final = Path(__file__).resolve().parents[3] / "events"
N: Final = 3  # WarmerConcurrency
PEAK_N: Final = 4  # WarmerPeakConcurrency
API: Final = "ApiFunction"


def _event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("warming"),
        name="warming",
        dataset=Dataset(seed=5, vulnerability_count=20),
        overrides={
            "WarmingStrategy": "warmer",
            "WarmerConcurrency": str(N),
            "WarmerPeakConcurrency": str(PEAK_N),
        },
        lambda_via_invoke_api=True,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def lambda_client(stage: LocalStage) -> Any:
    client = invoke_client(stage)
    # A longer hold than the 150 ms default: on a busy 2-core machine one ping thread can start
    # late, and the assertions below are about distinct environments, not about the hold's cost.
    config = client.get_function_configuration(FunctionName="WarmerFunction")
    variables = dict(config["Environment"]["Variables"]) | {"WARM_HOLD_MS": "500"}
    client.update_function_configuration(
        FunctionName="WarmerFunction", Environment={"Variables": variables}
    )
    return client


@pytest.fixture
def fresh_api(stage: LocalStage, lambda_client: Any) -> Iterator[str]:
    """The API's live alias with no environment (a configuration change ends them all)."""
    config = lambda_client.get_function_configuration(FunctionName=API)
    lambda_client.update_function_configuration(
        FunctionName=API, Environment={"Variables": dict(config["Environment"]["Variables"])}
    )
    yield f"{config['FunctionName']}:live"
    lambda_client.delete_function_concurrency(FunctionName=API)


def _warm(lambda_client: Any, event: Any) -> dict[str, Any]:
    answer = lambda_client.invoke(FunctionName="WarmerFunction", Payload=json.dumps(event))
    assert "FunctionError" not in answer, answer["Payload"].read()
    report: dict[str, Any] = json.loads(answer["Payload"].read())
    return report


def _emf(log: str) -> dict[str, float]:
    """The metric values of the EMF lines of a log tail (Powertools writes one JSON per flush)."""
    values: dict[str, float] = {}
    for line in log.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                name = metric["Name"]
                value = record[name]  # a list when one flush holds several values
                total = sum(value) if isinstance(value, list) else value
                values[name] = values.get(name, 0.0) + float(total)
    return values


def _call(lambda_client: Any, target: str, event: Any) -> tuple[dict[str, Any], ReportLine, str]:
    answer = lambda_client.invoke(FunctionName=target, Payload=json.dumps(event), LogType="Tail")
    log = base64.b64decode(answer["LogResult"]).decode()
    assert "FunctionError" not in answer, log
    return json.loads(answer["Payload"].read()), ReportLine.parse(log), log


def _concurrently(lambda_client: Any, target: str, event: Any, n: int) -> list[Any]:
    start = threading.Barrier(n, timeout=30)

    def one(_: int) -> Any:
        start.wait()
        return _call(lambda_client, target, event)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_the_warmer_keeps_n_environments_warm_and_the_next_n_requests_are_warm(
    stage: LocalStage, lambda_client: Any, fresh_api: str
) -> None:
    # when the off-peak schedule ticks twice on an API with no environment
    first = _warm(lambda_client, _event("warmer_scheduled.json"))
    second = _warm(lambda_client, _event("warmer_scheduled.json"))

    # then the first tick created N environments of the live alias, the second found them warm
    (target,) = first["targets"]
    assert target["target"].endswith(f":function:{fresh_api}")
    assert (first["reached"], first["cold"], first["failures"], first["throttles"]) == (N, N, 0, 0)
    assert (second["reached"], second["cold"], second["complete"]) == (N, 0, True)
    assert stage.runtime is not None
    assert stage.runtime.warm_workers(API) == N
    # and N concurrent real requests all land on warm environments: no init, no cold start
    results = _concurrently(lambda_client, fresh_api, _event("api_get_health.json"), N)
    for payload, report, log in results:
        assert payload["statusCode"] == 200
        assert report.init_duration_ms is None, log
        metrics = _emf(log)
        assert metrics.get("RealInvocations") == 1
        assert metrics.get("ColdStart", 0) == 0
    assert stage.runtime.warm_workers(API) == N


def test_without_warming_the_first_real_request_counts_a_cold_start(
    lambda_client: Any, fresh_api: str
) -> None:
    # the contrast of the test above: the same request on a cold API
    _, report, log = _call(lambda_client, fresh_api, _event("api_get_health.json"))

    assert report.init_duration_ms is not None
    assert _emf(log).get("ColdStart") == 1


def test_pings_never_reach_business_logic_business_metrics_or_error_counts(
    lambda_client: Any, fresh_api: str
) -> None:
    # given a real request, for contrast: it routes, and counts as a real invocation
    real, _, real_log = _call(lambda_client, fresh_api, _event("api_get_health.json"))
    assert real["statusCode"] == 200
    assert _emf(real_log)["RealInvocations"] == 1

    # when pings arrive, well formed or not
    for ping in (_event("api_warming_ping.json"), {"warmer": True, "fanout": "many"}):
        answer, _, log = _call(lambda_client, fresh_api, ping)
        # then each is answered by the guard, counted as a ping and as nothing else
        assert answer["warmed"] is True
        assert "statusCode" not in answer
        assert _emf(log) == {"WarmingPings": 1.0}
    # and the sync function, whose business metrics and failure count a run would emit, too
    answer, _, log = _call(lambda_client, "SyncFunction", _event("api_warming_ping.json"))
    assert answer["warmed"] is True
    assert _emf(log) == {"WarmingPings": 1.0}


@pytest.mark.parametrize(
    ("limit", "reached", "throttles"),
    [(N, N, 0), (1, 1, N - 1)],
    ids=["limit-equal-to-n", "limit-below-n"],
)
def test_a_fanout_reaches_n_workers_within_the_limit_and_throttles_are_reported_not_retried(  # noqa: PLR0917 - parametrized
    stage: LocalStage,
    lambda_client: Any,
    fresh_api: str,
    monkeypatch: pytest.MonkeyPatch,
    limit: int,
    reached: int,
    throttles: int,
) -> None:
    # given the API's reserved concurrency, and every invocation the runtime receives counted
    lambda_client.put_function_concurrency(FunctionName=API, ReservedConcurrentExecutions=limit)
    runtime = stage.runtime
    assert runtime is not None
    received: list[str] = []
    original = runtime.invoke

    def counting(name: str, payload: bytes, **kwargs: Any) -> Any:
        received.append(name)
        return original(name, payload, **kwargs)

    monkeypatch.setattr(runtime, "invoke", counting)

    # when the warmer asks for N
    report = _warm(lambda_client, _event("warmer_scheduled.json"))

    # then N - limit pings were throttled and reported as such, and no ping was sent twice
    assert (report["reached"], report["throttles"], report["failures"]) == (
        reached,
        throttles,
        0,
    )
    if throttles:
        assert report["targets"][0]["errors"] == {
            "ReservedFunctionConcurrentInvocationLimitExceeded": throttles
        }
    assert report["complete"] is (throttles == 0)
    assert sum(1 for name in received if "WarmerFunction" not in name) == N


def test_the_peak_schedule_asks_for_its_own_n(
    stage: LocalStage, lambda_client: Any, fresh_api: str
) -> None:
    # given the peak schedule of the template, as the stage's scheduler fires it
    assert stage.scheduler is not None
    (peak,) = stage.scheduler.find("WarmerFunction.Peak")
    event = json.loads(stage.scheduler.payload(peak, datetime.now(UTC)))

    # when it runs
    report = _warm(lambda_client, event)

    # then it warmed PEAK_N environments
    assert (report["schedule"], report["requested"], report["reached"]) == ("peak", PEAK_N, PEAK_N)
