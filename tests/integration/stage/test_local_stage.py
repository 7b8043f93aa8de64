"""The local stage as users and tests meet it: real template, real handlers, boto3 and HTTP."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from stage_support import TOOL_ENV, invoke_client, isolated_stage, localstage_cli

from localstage.report_line import ReportLine
from localstage.stage import LocalStage, PortInUseError, StageConfig
from localstage.vanta_data import Dataset

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stage")]

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"
# What `make local` puts on the path: the tools and the layer whose sync contract they use.


def _event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    dataset = Dataset(seed=3, vulnerability_count=200)
    with isolated_stage(tmp_path_factory.mktemp("stage"), name="stage", dataset=dataset) as running:
        yield running


@pytest.fixture(scope="module")
def lambda_client(stage: LocalStage) -> Any:
    return invoke_client(stage)


def _invoke(client: Any, name: str, event: Any) -> tuple[dict[str, Any], ReportLine, Any]:
    answer = client.invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail")
    tail = base64.b64decode(answer["LogResult"]).decode()
    return answer, ReportLine.parse(tail), json.loads(answer["Payload"].read())


@pytest.mark.parametrize(
    ("function", "fixture"),
    [
        ("ApiFunction", "api_get_health.json"),
        ("SyncFunction", "sync_manual.json"),
        ("WarmerFunction", "warmer_scheduled.json"),
    ],
)
def test_each_function_starts_cold_then_stays_warm(
    lambda_client: Any, function: str, fixture: str
) -> None:
    # given a function that has not run yet in this stage (each case uses its own function)
    lambda_client.update_function_configuration(
        FunctionName=function, Environment={"Variables": _env(lambda_client, function)}
    )
    # when it is invoked twice
    first, cold_report, _ = _invoke(lambda_client, function, _event(fixture))
    second, warm_report, _ = _invoke(lambda_client, function, _event(fixture))
    # then the first REPORT line carries an Init Duration and the second does not
    assert "FunctionError" not in first
    assert "FunctionError" not in second
    assert cold_report.init_duration_ms is not None
    assert cold_report.init_duration_ms > 0
    assert warm_report.init_duration_ms is None
    assert warm_report.memory_size_mb == _config(lambda_client, function)["MemorySize"]


def _env(client: Any, function: str) -> dict[str, str]:
    return dict(_config(client, function)["Environment"]["Variables"])


def _config(client: Any, function: str) -> dict[str, Any]:
    config: dict[str, Any] = client.get_function_configuration(FunctionName=function)
    return config


def test_template_settings_reach_the_local_functions(lambda_client: Any) -> None:
    sync = _config(lambda_client, "SyncFunction")
    assert sync["MemorySize"] == 1536
    assert sync["Timeout"] == 900
    assert sync["Environment"]["Variables"]["VANTA_API_BASE_URL"].startswith("http://127.0.0.1:")
    api = _config(lambda_client, "ApiFunction")
    assert api["Timeout"] < 29


def test_configuration_change_forces_a_cold_start(lambda_client: Any) -> None:
    # given a warm ApiFunction
    _invoke(lambda_client, "ApiFunction", _event("api_get_health.json"))
    _, warm, _ = _invoke(lambda_client, "ApiFunction", _event("api_get_health.json"))
    assert warm.init_duration_ms is None
    # when its environment changes (the update waiter works as against AWS)
    env = _env(lambda_client, "ApiFunction") | {"APP_VERSION": "9.8.7"}
    lambda_client.update_function_configuration(
        FunctionName="ApiFunction", Environment={"Variables": env}
    )
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName="ApiFunction")
    # then the next invocation is cold and sees the new value
    _, report, payload = _invoke(lambda_client, "ApiFunction", _event("api_get_health.json"))
    assert report.init_duration_ms is not None
    assert json.loads(payload["body"])["version"] == "9.8.7"


def test_health_through_the_api_front_needs_no_key(stage: LocalStage) -> None:
    response = requests.get(f"{stage.urls['api']}/health", timeout=30)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_protected_routes_refuse_a_request_without_the_key(stage: LocalStage) -> None:
    for path in ("/stats", "/vulnerabilities", "/sync/runs"):
        response = requests.get(f"{stage.urls['api']}{path}", timeout=30)
        assert response.status_code == 403, path
        assert response.json() == {"message": "Forbidden"}


def test_protected_routes_reach_the_function_with_the_key(stage: LocalStage) -> None:
    response = requests.get(
        f"{stage.urls['api']}/sync/runs", headers={"x-api-key": stage.api_key}, timeout=30
    )
    # The key let the request through to ApiFunction: it answers, whatever the route serves.
    assert response.status_code not in (403, 502)
    assert response.headers["Content-Type"].startswith("application/json")


def test_the_sync_schedule_fires_into_the_queue_and_the_sync_runs_from_it(
    stage: LocalStage,
) -> None:
    # given the template's sync schedule, an EventBridge rule whose target is SyncRequests
    assert stage.scheduler is not None
    # when it fires
    (message_id,) = stage.scheduler.fire("SyncFunction")
    # then its event went through the queue and the sync's event source ran a scheduled sync
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=stage.urls["aws"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = dynamodb.query(
            TableName=stage.physical_ids["StateTable"],
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "RUN"}},
            ConsistentRead=True,
        )["Items"]
        scheduled = [i for i in found if i.get("trigger", {}).get("S") == "scheduled"]
        if any(item["status"]["S"] == "succeeded" for item in scheduled):
            assert message_id
            return
        time.sleep(0.2)
    raise AssertionError("no scheduled run completed from the queue within 120 s")


def test_stage_file_tells_scripts_where_everything_is(stage: LocalStage) -> None:
    assert stage.config.state_file is not None
    info = json.loads(stage.config.state_file.read_text())
    assert info["api_url"] == stage.urls["api"]
    assert info["api_key"] == stage.api_key
    assert set(info["functions"]) >= {"ApiFunction", "SyncFunction", "WarmerFunction"}


def test_second_stage_on_the_same_port_says_port_in_use(stage: LocalStage, tmp_path: Path) -> None:
    taken = int(stage.urls["api"].rsplit(":", 1)[1])
    config = StageConfig(
        api_port=taken, invoke_port=0, moto_port=0, vanta_port=0, state_file=tmp_path / "s.json"
    )
    with pytest.raises(PortInUseError, match=f"port {taken} on 127.0.0.1 .API Gateway front"):
        LocalStage(config).start()


def test_make_local_command_serves_then_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    # given `python -m localstage up` (what `make local` runs) on free ports
    state = tmp_path / "stage.json"
    env = {**os.environ, **TOOL_ENV}
    args = [sys.executable, "-m", "localstage", "up", "--state-file", str(state)]
    args += ["--api-port", "0", "--invoke-port", "0", "--moto-port", "0", "--vanta-port", "0"]
    args += ["--vulnerabilities", "50"]
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
    )
    try:
        # when it reports its first sync
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("first sync:"):
                break
        # then the state file names a working API and the banner shows the key and a curl line
        info = json.loads(state.read_text())
        assert requests.get(f"{info['api_url']}/health", timeout=30).status_code == 200
        banner = "".join(lines)
        assert info["api_key"] in banner
        assert f"curl -s {info['api_url']}/health" in banner
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "local stage stopped" in out
    assert not state.exists()


def test_fire_sends_the_templates_schedule_event_through_the_running_stage(
    stage: LocalStage,
) -> None:
    # given the running stage / when its sync schedule is fired from the command line
    assert stage.config.state_file is not None
    result = localstage_cli("fire", "SyncFunction", "--state-file", str(stage.config.state_file))
    # then one Event invocation was queued for the sync function
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("fired SyncFunction: request ") == 1


def test_fire_names_the_schedules_it_knows_when_given_an_unknown_one(stage: LocalStage) -> None:
    assert stage.config.state_file is not None
    result = localstage_cli("fire", "NoSuchSchedule", "--state-file", str(stage.config.state_file))
    assert result.returncode == 2
    assert "NoSuchSchedule" in result.stderr
    assert "SyncFunction." in result.stderr


def test_invoke_local_uses_the_running_stage(stage: LocalStage) -> None:
    assert stage.config.state_file is not None
    event = str(EVENTS / "api_get_health.json")
    result = localstage_cli(
        "invoke", "ApiFunction", event, "--state-file", str(stage.config.state_file)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["statusCode"] == 200
    assert "REPORT RequestId:" in result.stderr


def test_invoke_local_without_a_stage_starts_a_private_one(tmp_path: Path) -> None:
    event = str(EVENTS / "sync_manual.json")
    result = localstage_cli(
        "invoke", "SyncFunction", event, "--state-file", str(tmp_path / "none.json")
    )
    assert result.returncode == 0, result.stderr
    assert "no local stage is running (make local starts one)" in result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "succeeded", answer
    assert answer["run_counts"]["fetched"] > 0
