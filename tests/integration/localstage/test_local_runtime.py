"""The local Lambda runtime and its Invoke API, driven through boto3's lambda client."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from localstage.invoke_api import start_invoke_api
from localstage.report_line import ReportLine
from localstage.runtime import LocalRuntime
from localstage.spec import FunctionSpec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("localruntime")]

HANDLERS = Path(__file__).parent / "handlers"
REGION = "eu-west-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _spec(name: str, function: str, **overrides: Any) -> FunctionSpec:
    values: dict[str, Any] = {
        "logical_id": f"{name}Function",
        "function_name": name,
        "code_dir": HANDLERS / "lrt_basic",
        "handler": f"lrt_echo.handler.{function}",
        "runtime": "python3.13",
        "architecture": "x86_64",
        "memory_mb": 128,
        "timeout_s": 5,
        "reserved_concurrency": None,
        "environment": {"GREETING": "hello"},
        "layer_dirs": (HANDLERS / "lrt_layer",),
    }
    values.update(overrides)
    if values["code_dir"].name == "lrt_broken":
        values["handler"] = f"lrt_broken_fn.handler.{function}"
    return FunctionSpec(**values)


FUNCTIONS = [
    _spec("cold-warm", "echo"),
    _spec("env-echo", "echo"),
    _spec("reconfigured", "echo"),
    _spec("never-invoked", "echo"),
    _spec("busy", "wait_for_file", reserved_concurrency=2, timeout_s=20),
    _spec("limited", "echo"),
    _spec("sleepy", "sleepy", timeout_s=1),
    _spec("raising", "failing"),
    _spec("async-failing", "failing", dead_letter_queue="FailuresDlq", max_event_retries=1),
    _spec("crashing", "crashing"),
    _spec("hungry", "hungry", memory_mb=128),
    _spec("broken", "handler", code_dir=HANDLERS / "lrt_broken", layer_dirs=()),
]


@pytest.fixture(scope="module")
def sqs_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def sqs(sqs_server: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=sqs_server,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def dlq_url(sqs: Any) -> str:
    url: str = sqs.create_queue(QueueName="failures-dlq")["QueueUrl"]
    return url


@pytest.fixture(scope="module")
def runtime(sqs_server: str, dlq_url: str) -> Iterator[LocalRuntime]:
    local = LocalRuntime(
        {spec.logical_id: spec for spec in FUNCTIONS},
        base_env={**CREDENTIALS, "AWS_REGION": REGION},
        sqs_endpoint_url=sqs_server,
        dlq_urls={"FailuresDlq": dlq_url},
        event_retry_delay_s=0.0,
    )
    yield local
    local.shutdown()


@pytest.fixture(scope="module")
def lambda_client(runtime: LocalRuntime) -> Iterator[Any]:
    server = start_invoke_api(runtime, port=0)
    yield boto3.client(
        "lambda",
        endpoint_url=server.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
    )
    server.close()


def _invoke(client: Any, name: str, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    response = client.invoke(
        FunctionName=name, Payload=json.dumps(event or {}).encode(), LogType="Tail", **kwargs
    )
    response["Body"] = json.loads(response["Payload"].read())
    response["Log"] = base64.b64decode(response.get("LogResult", "")).decode()
    return response


def test_first_invoke_is_cold_and_the_next_reuses_the_warm_worker(lambda_client: Any) -> None:
    # given a function never invoked
    # when it is invoked twice in a row
    first = _invoke(lambda_client, "cold-warm")
    second = _invoke(lambda_client, "cold-warm")

    # then the same worker answers both, and only the first REPORT carries an Init Duration
    assert first["StatusCode"] == 200
    assert "FunctionError" not in first
    assert first["Body"]["pid"] == second["Body"]["pid"]
    cold, warm = ReportLine.parse(first["Log"]), ReportLine.parse(second["Log"])
    assert cold.init_duration_ms is not None
    assert cold.init_duration_ms > 0
    assert warm.init_duration_ms is None
    assert warm.request_id == second["ResponseMetadata"]["RequestId"]
    assert warm.memory_size_mb == 128
    assert 0 < warm.max_memory_used_mb <= 128
    assert re.search(r"^START RequestId: \S+ Version: \$LATEST$", second["Log"], re.M)
    assert "END RequestId: " + warm.request_id in second["Log"]
    assert "echo invoked with []" in second["Log"]
    assert "lrt_echo module imported" in first["Log"]
    assert first["ExecutedVersion"] == "$LATEST"


def test_function_runs_with_lambda_environment_and_layer_on_path(lambda_client: Any) -> None:
    # given the names of the variables Lambda sets
    names = [
        "GREETING",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_EXECUTION_ENV",
        "AWS_REGION",
        "LAMBDA_TASK_ROOT",
        "TZ",
        "_HANDLER",
        "AWS_ACCESS_KEY_ID",
    ]

    # when the function is invoked by ARN with an alias
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:env-echo:live"
    custom = base64.b64encode(json.dumps({"custom": {"caller": "test"}}).encode()).decode()
    body = _invoke(lambda_client, arn, {"env": names}, ClientContext=custom)["Body"]

    # then it sees the template's and Lambda's variables, its code first on the path, then the layer
    assert body["env"] == {
        "GREETING": "hello",
        "AWS_LAMBDA_FUNCTION_NAME": "env-echo",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_REGION": REGION,
        "LAMBDA_TASK_ROOT": str(HANDLERS / "lrt_basic"),
        "TZ": ":UTC",
        "_HANDLER": "lrt_echo.handler.echo",
        "AWS_ACCESS_KEY_ID": "testing",
    }
    assert body["sys_path"][0] == str(HANDLERS / "lrt_basic")
    assert str(HANDLERS / "lrt_layer") in body["sys_path"]
    assert body["layer"] == "from-layer"
    assert body["arn"] == arn
    assert body["client_custom"] == {"caller": "test"}
    assert 4000 < body["remaining_ms"] <= 5000


def test_update_function_configuration_ends_warm_workers(lambda_client: Any) -> None:
    # given a warm function
    before = _invoke(lambda_client, "reconfigured", {"env": ["GREETING"]})

    # when its environment changes
    lambda_client.update_function_configuration(
        FunctionName="reconfigured", Environment={"Variables": {"GREETING": "bonjour"}}
    )
    lambda_client.get_waiter("function_updated").wait(FunctionName="reconfigured")
    after = _invoke(lambda_client, "reconfigured", {"env": ["GREETING"]})

    # then the next invoke is a cold start in a new worker that sees the new value
    assert before["Body"]["env"] == {"GREETING": "hello"}
    assert after["Body"]["env"] == {"GREETING": "bonjour"}
    assert after["Body"]["pid"] != before["Body"]["pid"]
    assert ReportLine.parse(after["Log"]).init_duration_ms is not None
    config = lambda_client.get_function_configuration(FunctionName="reconfigured")
    assert config["Environment"]["Variables"] == {"GREETING": "bonjour"}
    assert config["LastUpdateStatus"] == "Successful"


def test_timeout_kills_the_worker_and_fails_like_lambda(lambda_client: Any) -> None:
    # given a function with a 1 s timeout whose handler sleeps 30 s
    # when it is invoked
    timed_out = _invoke(lambda_client, "sleepy", {"seconds": 30})
    # and invoked again with a handler that returns at once
    recovered = _invoke(lambda_client, "sleepy", {"seconds": 0})

    # then the first fails with Lambda's timeout message and REPORT status
    assert timed_out["FunctionError"] == "Unhandled"
    message = timed_out["Body"]["errorMessage"]
    assert re.fullmatch(r"\S+Z \S+ Task timed out after 1\.\d\d seconds", message)
    report = ReportLine.parse(timed_out["Log"])
    assert report.status == "timeout"
    assert report.duration_ms >= 1000
    assert "going to sleep" in timed_out["Log"]
    # and the killed worker was replaced by a fresh one
    assert "FunctionError" not in recovered
    assert ReportLine.parse(recovered["Log"]).init_duration_ms is not None


def test_invocations_beyond_reserved_concurrency_are_throttled(
    lambda_client: Any, runtime: LocalRuntime, tmp_path: Path
) -> None:
    # given two invocations keeping the function's two reserved environments busy
    release = tmp_path / "release"
    answers: list[Any] = []
    busy = [
        threading.Thread(
            target=lambda: answers.append(_invoke(lambda_client, "busy", {"release": str(release)}))
        )
        for _ in range(2)
    ]
    for thread in busy:
        thread.start()
    deadline = time.monotonic() + 10
    while runtime.concurrency("busy") < 2 and time.monotonic() < deadline:
        threading.Event().wait(0.01)

    # when a third invocation arrives
    with pytest.raises(ClientError) as raised:
        lambda_client.invoke(FunctionName="busy", Payload=b"{}")

    # then it is throttled as Lambda throttles, and the two others complete
    release.touch()
    for thread in busy:
        thread.join(timeout=20)
    error: Any = raised.value.response
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert [a["StatusCode"] for a in answers] == [200, 200]
    assert all("FunctionError" not in a for a in answers)


def test_reserved_concurrency_is_set_read_and_removed_as_lambda_does(
    lambda_client: Any, runtime: LocalRuntime
) -> None:
    # given a warm function with no reserved concurrency
    _invoke(lambda_client, "limited", {})
    got = lambda_client.get_function_concurrency(FunctionName="limited")
    assert "ReservedConcurrentExecutions" not in got

    # when a bad value arrives (botocore checks it too: send it raw), then it is refused by name
    refused = requests.put(
        f"{lambda_client.meta.endpoint_url}/2017-10-31/functions/limited/concurrency",
        json={"ReservedConcurrentExecutions": "one"},
        timeout=10,
    )
    assert refused.status_code == 400
    assert refused.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    assert "ReservedConcurrentExecutions" in refused.json()["message"]
    # when it gets one
    lambda_client.put_function_concurrency(FunctionName="limited", ReservedConcurrentExecutions=1)

    # then it is read back, its warm environment stays, and the limit applies
    got = lambda_client.get_function_concurrency(FunctionName="limited")
    assert got["ReservedConcurrentExecutions"] == 1
    assert runtime.warm_workers("limited") == 1
    assert runtime.function("limited").reserved_concurrency == 1
    # and removing it lifts the limit
    lambda_client.delete_function_concurrency(FunctionName="limited")
    assert runtime.function("limited").reserved_concurrency is None


def test_handler_exception_comes_back_as_an_unhandled_function_error(lambda_client: Any) -> None:
    # given a handler that raises
    # when it is invoked
    answer = _invoke(lambda_client, "raising", {"order": 7})

    # then the error is returned with Lambda's shape and the worker stays warm
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    assert answer["Body"]["errorType"] == "OrderRejectedError"
    assert answer["Body"]["errorMessage"] == "order 7 rejected"
    assert any("handler.py" in frame for frame in answer["Body"]["stackTrace"])
    assert "[ERROR] OrderRejectedError: order 7 rejected" in answer["Log"]
    again = _invoke(lambda_client, "raising", {"order": 8})
    assert ReportLine.parse(again["Log"]).init_duration_ms is None


def test_import_error_at_init_is_reported_as_runtime_import_module_error(
    lambda_client: Any,
) -> None:
    # given a handler module that cannot be imported
    # when the function is invoked
    answer = _invoke(lambda_client, "broken")

    # then Lambda's init error comes back
    assert answer["FunctionError"] == "Unhandled"
    assert answer["Body"]["errorType"] == "Runtime.ImportModuleError"
    assert "lrt_module_that_does_not_exist" in answer["Body"]["errorMessage"]
    assert ReportLine.parse(answer["Log"]).error_type == "Runtime.ImportModuleError"


def test_worker_that_dies_mid_invoke_is_replaced(lambda_client: Any) -> None:
    # given a handler that exits its process
    # when it is invoked twice
    first = _invoke(lambda_client, "crashing")
    second = _invoke(lambda_client, "crashing")

    # then each invoke fails with Runtime.ExitError and gets a fresh worker
    assert first["Body"]["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in first["Body"]["errorMessage"]
    assert ReportLine.parse(second["Log"]).init_duration_ms is not None
    assert second["Body"]["errorType"] == "Runtime.ExitError"


def test_worker_over_its_memory_size_ends_out_of_memory(lambda_client: Any) -> None:
    # given a 128 MB function
    # when its handler holds 300 MB
    answer = _invoke(lambda_client, "hungry", {"mb": 300})

    # then the worker is killed and the invoke fails as Lambda's out-of-memory does
    assert answer["FunctionError"] == "Unhandled"
    assert answer["Body"]["errorType"] == "Runtime.OutOfMemory"
    report = ReportLine.parse(answer["Log"])
    assert (report.status, report.error_type) == ("error", "Runtime.OutOfMemory")


def test_failed_async_event_lands_in_the_dead_letter_queue(
    lambda_client: Any, sqs: Any, dlq_url: str
) -> None:
    # given a function that always fails, with a DLQ
    event = {"order": 42}

    # when it is invoked asynchronously
    accepted = lambda_client.invoke(
        FunctionName="async-failing", InvocationType="Event", Payload=json.dumps(event).encode()
    )

    # then the call is accepted, and after its retries the event reaches the DLQ
    assert accepted["StatusCode"] == 202
    received = sqs.receive_message(
        QueueUrl=dlq_url, WaitTimeSeconds=10, MessageAttributeNames=["All"]
    )
    [message] = received["Messages"]
    assert json.loads(message["Body"]) == event
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["RequestID"] == accepted["ResponseMetadata"]["RequestId"]
    assert attributes["ErrorCode"] == "200"
    assert attributes["ErrorMessage"] == "order 42 rejected"


def test_dry_run_validates_without_running(lambda_client: Any, runtime: LocalRuntime) -> None:
    # given a function never invoked
    # when it is invoked as a DryRun
    answer = lambda_client.invoke(FunctionName="never-invoked", InvocationType="DryRun")

    # then 204 comes back and no worker was started
    assert answer["StatusCode"] == 204
    assert runtime.warm_workers("never-invoked") == 0


def test_list_and_get_function_describe_every_function(lambda_client: Any) -> None:
    # given the runtime's functions
    # when they are listed (one page at a time) and one is read in full
    pages = lambda_client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 4})
    listed = [f for page in pages for f in page["Functions"]]
    busy = lambda_client.get_function(FunctionName="busy")
    lambda_client.get_waiter("function_active_v2").wait(FunctionName="busy")

    # then every function is there with its configuration
    assert sorted(f["FunctionName"] for f in listed) == sorted(s.function_name for s in FUNCTIONS)
    assert busy["Configuration"]["State"] == "Active"
    assert busy["Configuration"]["Timeout"] == 20
    assert busy["Configuration"]["Handler"] == "lrt_echo.handler.wait_for_file"
    assert busy["Concurrency"] == {"ReservedConcurrentExecutions": 2}


def test_unknown_function_raises_resource_not_found(lambda_client: Any) -> None:
    # given a name no function has
    # when it is invoked or described
    # then boto3 raises ResourceNotFoundException
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="no-such-function", Payload=b"{}")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function_configuration(FunctionName="no-such-function")


def test_payload_that_is_not_json_is_rejected(lambda_client: Any) -> None:
    # given a payload that is not JSON
    # when it is sent
    # then Lambda's InvalidRequestContentException comes back
    with pytest.raises(lambda_client.exceptions.InvalidRequestContentException):
        lambda_client.invoke(FunctionName="cold-warm", Payload=b"{not json")


class _FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_worker_idle_past_the_idle_timeout_is_stopped() -> None:
    # given a runtime whose workers stop after 60 idle seconds, on a fake clock
    clock = _FakeClock()
    spec = _spec("idle", "echo")
    lines: list[str] = []
    with LocalRuntime(
        {spec.logical_id: spec},
        base_env=CREDENTIALS,
        idle_timeout_s=60,
        clock=clock,
        log_sink=lambda line: lines.append(line.text),
    ) as local:
        first = local.invoke("idle", b"{}")
        clock.now += 30
        warm = local.invoke("idle", b"{}")

        # when more than the idle timeout passes
        clock.now += 61
        stopped = local.reap_idle()
        later = local.invoke("idle", b"{}")

    # then the worker was stopped and the next invoke is cold
    assert (first.cold, warm.cold, later.cold) == (True, False, True)
    assert stopped == 1
    assert json.loads(later.payload)["pid"] != json.loads(first.payload)["pid"]
    # and the log sink saw each invocation framed by START, END and REPORT, in order
    kinds = [line.split(" ", 1)[0] for line in lines if line.startswith(("START", "END", "REPORT"))]
    assert kinds == ["START", "END", "REPORT"] * 3
    assert lines.count("lrt_echo module imported") == 2


def test_a_warm_worker_older_than_the_init_timeout_still_serves(sqs_server: str) -> None:
    # given a runtime whose workers must ask for their first event within 1 s, and a worker
    # whose first invocation lasts longer than that (the function under test sleeps)
    spec = _spec("slow-then-fast", "sleepy")
    with LocalRuntime(
        {spec.logical_id: spec},
        base_env={**CREDENTIALS, "AWS_REGION": REGION},
        init_timeout_s=1.0,
    ) as local:
        first = local.invoke("slow-then-fast", json.dumps({"seconds": 1.2}).encode())
        # when the now warm worker, older than the init timeout, gets the next event
        second = local.invoke("slow-then-fast", json.dumps({"seconds": 0}).encode())
    # then it serves it warm instead of being killed as if it had never asked for work
    assert first.function_error is None
    assert second.function_error is None, second.payload
    assert second.cold is False
