"""Warming engine: N overlapping pings reach N environments; failures are counted, not retried."""

from __future__ import annotations

import io
import json
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber
from fakes.lambda_pool import FakeLambda

from lambdakit.warmer import (
    BotocoreInvoker,
    InvokeFailedError,
    InvokeThrottledError,
    Warmer,
    no_retry_options,
)

ALIAS = "arn:aws:lambda:us-east-1:123456789012:function:api:live"


def test_a_fanout_of_n_reaches_n_distinct_cold_environments_then_keeps_them_warm() -> None:
    # given a function with no environment yet, whose pings overlap (they all arrive in the hold)
    function = FakeLambda(arrivals=3)
    warmer = Warmer(function, hold_ms=150)

    # when two runs of 3 pings follow each other
    first = warmer.warm([ALIAS], 3, run_id="r1")
    second = warmer.warm([ALIAS], 3, run_id="r2")

    # then the first creates 3 environments and the second finds the same 3 warm
    assert (first.reached, first.cold, first.failures, first.throttles) == (3, 3, 0, 0)
    assert (second.reached, second.cold) == (3, 0)
    assert first.complete
    assert second.complete
    assert function.handled_by_business == 0
    # and each ping asked for the fan-out and the hold, with an id of its run
    events = [event for _, event in function.calls[:3]]
    assert all(e["warmer"] is True and e["fanout"] == 3 and e["hold_ms"] == 150 for e in events)
    assert sorted(e["ping_id"] for e in events) == ["r1#0", "r1#1", "r1#2"]


def test_the_report_is_one_json_ready_summary_per_run() -> None:
    ticks = iter([10.0, 10.25])
    warmer = Warmer(FakeLambda(arrivals=2), hold_ms=100, clock=lambda: next(ticks))

    report = warmer.warm([ALIAS], 2, run_id="r1")

    assert report.to_dict() == {
        "run_id": "r1",
        "fanout": 2,
        "hold_ms": 100,
        "requested": 2,
        "reached": 2,
        "cold": 2,
        "failures": 0,
        "throttles": 0,
        "complete": True,
        "duration_ms": 250.0,
        "targets": [
            {
                "target": ALIAS,
                "requested": 2,
                "reached": 2,
                "cold": 2,
                "failures": 0,
                "throttles": 0,
                "executed_versions": ["7"],
                "errors": {},
            }
        ],
    }
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()


def test_pings_over_the_concurrency_limit_are_counted_as_throttles_and_sent_once() -> None:
    # given a function limited to 1 concurrent execution
    function = FakeLambda(limit=1, arrivals=3)

    # when the warmer asks for 3
    report = Warmer(function).warm([ALIAS], 3, run_id="r1")

    # then 1 environment answered, 2 pings were throttled, and nothing was sent again
    assert (report.reached, report.throttles, report.failures) == (1, 2, 0)
    assert not report.complete
    assert report.targets[0].errors == {"ReservedFunctionConcurrentInvocationLimitExceeded": 2}
    assert len(function.calls) == 3


def test_each_kind_of_failure_is_counted_per_target_with_its_code() -> None:
    # given four targets: one fine, one unreachable, one crashing, one without the warm guard
    function = FakeLambda(arrivals=8)
    function.fail["denied"] = "AccessDeniedException"
    function.function_error.add("crashing")
    function.answer_as_business.add("unguarded")

    report = Warmer(function).warm(["fine", "denied", "crashing", "unguarded"], 2, run_id="r1")

    by_target = {t.target: t for t in report.targets}
    assert (by_target["fine"].reached, by_target["fine"].failures) == (2, 0)
    assert by_target["denied"].errors == {"AccessDeniedException": 2}
    assert by_target["crashing"].errors == {"FunctionUnhandled": 2}
    assert by_target["unguarded"].errors == {"NotAWarmingAnswer": 2}
    assert (report.reached, report.failures, report.throttles) == (2, 6, 0)
    assert len(function.calls) == 8


@pytest.mark.parametrize(
    ("targets", "fanout", "message"),
    [([], 3, "targets"), ([ALIAS], 0, "fanout: 0"), ([ALIAS], 101, "fanout: 101")],
)
def test_a_run_that_cannot_make_sense_is_refused_before_any_ping(
    targets: list[str], fanout: int, message: str
) -> None:
    function = FakeLambda()
    with pytest.raises(ValueError, match=message):
        Warmer(function).warm(targets, fanout, run_id="r1")
    assert function.calls == []


# ------------------------------------------------------------------ the botocore adapter
def _client() -> Any:
    options = no_retry_options(3, 1, read_timeout=15.0)
    session = botocore.session.get_session()
    return session.create_client(
        "lambda",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=options.to_config(),
    )


def test_the_warmer_client_makes_one_attempt_per_call_with_a_connection_per_ping() -> None:
    options = no_retry_options(5, 2, read_timeout=12.0)
    config: Any = options.to_config()  # botocore's Config sets its attributes dynamically

    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.read_timeout == 12.0
    assert config.max_pool_connections >= 10


def test_adapter_returns_the_answer_the_executed_version_and_the_function_error() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {
                "StatusCode": 200,
                "Payload": io.BytesIO(b'{"warmed": true}'),
                "ExecutedVersion": "7",
                "FunctionError": "Unhandled",
            },
            {"FunctionName": ALIAS, "InvocationType": "RequestResponse", "Payload": b"{}"},
        )
        answer = BotocoreInvoker(client).invoke(ALIAS, b"{}")

    assert (answer.payload, answer.executed_version, answer.function_error) == (
        b'{"warmed": true}',
        "7",
        "Unhandled",
    )


def test_adapter_turns_a_throttle_into_a_throttle_and_other_errors_into_failures() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_client_error("invoke", "TooManyRequestsException", "Rate Exceeded.", 429)
        stub.add_client_error("invoke", "ResourceNotFoundException", "Function not found", 404)
        with pytest.raises(InvokeThrottledError):
            BotocoreInvoker(client).invoke(ALIAS, b"{}")
        with pytest.raises(InvokeFailedError) as failed:
            BotocoreInvoker(client).invoke(ALIAS, b"{}")

    assert failed.value.code == "ResourceNotFoundException"


def test_adapter_reports_an_unreachable_endpoint_as_a_failure_named_by_its_error() -> None:
    # given a client pointed at a closed loopback port (nothing listens on the discard port)
    options = no_retry_options(1, 1, read_timeout=2.0)
    client = botocore.session.get_session().create_client(
        "lambda",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=options.to_config(),
    )

    with pytest.raises(InvokeFailedError) as failed:
        BotocoreInvoker(client).invoke(ALIAS, b"{}")

    assert failed.value.code == "EndpointConnectionError"
