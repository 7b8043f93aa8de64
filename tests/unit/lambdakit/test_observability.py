"""Observability factories follow validated settings; no Tracer (no X-Ray SDK) unless enabled."""

from __future__ import annotations

import gc
import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

import lambdakit
from lambdakit.observability import (
    ObservabilitySettings,
    PowertoolsMetricSink,
    api_gateway_fields,
    capture_handler,
    create_logger,
    create_metrics,
    create_tracer,
    finish_init,
    log_context,
)
from lambdakit.settings import SettingsError

SHARED_DIR = Path(lambdakit.__file__).parent.parent


def test_given_environment_when_loading_settings_then_values_are_typed() -> None:
    config = ObservabilitySettings.from_env(
        {
            "POWERTOOLS_SERVICE_NAME": "api",
            "POWERTOOLS_METRICS_NAMESPACE": "VulnStats",
            "POWERTOOLS_LOG_LEVEL": "debug",
            "POWERTOOLS_LOGGER_SAMPLE_RATE": "0.1",
            "TRACING_ENABLED": "true",
        }
    )

    assert config == ObservabilitySettings(
        service="api",
        namespace="VulnStats",
        log_level="DEBUG",
        sample_rate=0.1,
        tracing_enabled=True,
    )


def test_given_bad_values_when_loading_settings_then_error_names_each_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        ObservabilitySettings.from_env(
            {
                "POWERTOOLS_LOG_LEVEL": "LOUD",
                "POWERTOOLS_LOGGER_SAMPLE_RATE": "2",
                "TRACING_ENABLED": "sometimes",
            }
        )

    assert set(caught.value.problems) == {
        "POWERTOOLS_LOG_LEVEL",
        "POWERTOOLS_LOGGER_SAMPLE_RATE",
        "TRACING_ENABLED",
    }


def test_given_settings_when_creating_logger_then_service_level_and_sampling_follow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Powertools draws random.random() at construction to decide debug sampling: make the draw
    # fall outside the 25 % so the configured level is what we see.
    monkeypatch.setattr("random.random", lambda: 0.99)
    logger = create_logger(
        ObservabilitySettings(service="api", log_level="WARNING", sample_rate=0.25)
    )

    assert logger.service == "api"
    assert logger.log_level == 30
    assert logger.sampling_rate == 0.25


def test_given_settings_when_creating_metrics_then_namespace_and_service_follow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = create_metrics(ObservabilitySettings(service="api", namespace="LambdakitTest"))
    sink = PowertoolsMetricSink(metrics)

    try:
        sink.add("RealInvocations")
        sink.flush()
    finally:
        metrics.clear_metrics()

    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert document["RealInvocations"] == [1.0]
    assert document["service"] == "api"
    declared = document["_aws"]["CloudWatchMetrics"][0]
    assert declared["Namespace"] == "LambdakitTest"
    assert declared["Metrics"] == [{"Name": "RealInvocations", "Unit": "Count"}]


def test_given_tracing_disabled_when_creating_tracer_then_none() -> None:
    assert create_tracer(ObservabilitySettings(tracing_enabled=False)) is None


def test_given_no_tracer_when_capturing_handler_then_handler_is_unchanged() -> None:
    def handler(event: Any, context: Any) -> None:
        return None

    assert capture_handler(None)(handler) is handler


@pytest.mark.parametrize(("enabled", "xray_loaded"), [("false", False), ("true", True)])
def test_given_tracing_flag_when_creating_tracer_in_fresh_process_then_xray_only_if_enabled(
    enabled: str, xray_loaded: bool
) -> None:
    code = (
        "import sys\n"
        "from lambdakit.observability import create_tracer\n"
        "tracer = create_tracer()\n"
        "print(tracer is not None, 'aws_xray_sdk' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={
            "PYTHONPATH": str(SHARED_DIR),
            "TRACING_ENABLED": enabled,
            "POWERTOOLS_SERVICE_NAME": "api",
            "AWS_XRAY_SDK_ENABLED": "false",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )

    assert completed.stdout.split() == [str(xray_loaded), str(xray_loaded)]


def test_given_end_of_init_when_finishing_then_collects_before_freezing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def collect(*_args: int) -> int:
        calls.append("collect")
        return 0

    def freeze() -> None:
        calls.append("freeze")

    monkeypatch.setattr(gc, "collect", collect)
    monkeypatch.setattr(gc, "freeze", freeze)

    finish_init()

    assert calls == ["collect", "freeze"]


def test_given_a_lean_init_when_finishing_without_collecting_then_only_freezes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(gc, "collect", lambda *_: calls.append("collect"))
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))

    finish_init(collect=False)

    assert calls == ["freeze"]


def test_given_end_of_init_when_finishing_for_real_then_objects_are_frozen() -> None:
    try:
        finish_init()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_given_metrics_sink_when_adding_then_count_metric_is_buffered() -> None:
    metrics = Metrics(namespace="LambdakitTest", service="api")
    try:
        PowertoolsMetricSink(metrics).add("UpstreamRetries", 2.0)
        assert metrics.metric_set["UpstreamRetries"]["Value"] == [2.0]
        assert metrics.metric_set["UpstreamRetries"]["Unit"] == "Count"
    finally:
        metrics.clear_metrics()


def test_given_no_namespace_when_creating_metrics_then_init_fails_naming_the_variable() -> None:
    # Powertools would accept this and fail at the first flush, mid-invocation (a warming ping).
    with pytest.raises(SettingsError, match="POWERTOOLS_METRICS_NAMESPACE: missing"):
        create_metrics(ObservabilitySettings(service="api", namespace=None))


def _buffered_logger(
    service: str, stream: io.StringIO, *, level: str = "INFO", sample_rate: float = 0.0
) -> Logger:
    return create_logger(
        ObservabilitySettings(service=service, log_level=level, sample_rate=sample_rate),
        logger_handler=logging.StreamHandler(stream),
    )


def _messages(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["message"] for line in stream.getvalue().splitlines()]


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> None:
    # Powertools keys its log buffer on the invocation's trace id, set by the Lambda runtime.
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0")


@pytest.mark.usefixtures("traced")
def test_given_info_level_when_invocation_succeeds_then_debug_lines_are_dropped(
    lambda_context: Any,
) -> None:
    stream = io.StringIO()
    logger = _buffered_logger("buffer-ok", stream)

    @log_context(logger)
    def handler(event: Any, context: Any) -> str:
        logger.debug("detail")
        logger.info("done")
        logger.warning("careful")
        return "ok"

    assert handler({}, lambda_context) == "ok"
    assert _messages(stream) == ["done", "careful"]


@pytest.mark.usefixtures("traced")
def test_given_info_level_when_an_error_is_logged_then_debug_context_comes_first(
    lambda_context: Any,
) -> None:
    stream = io.StringIO()
    logger = _buffered_logger("buffer-error", stream)

    @log_context(logger, debug_fields=api_gateway_fields)
    def handler(event: Any, context: Any) -> str:
        logger.debug("detail")
        logger.error("failed")
        return "answered 500"

    handler(
        {"httpMethod": "GET", "resource": "/stats", "headers": {"x-api-key": "k"}}, lambda_context
    )
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["invocation", "detail", "failed"]
    assert lines[0]["resource"] == "/stats"
    assert "k" not in stream.getvalue()  # headers (API keys) are never part of the context


@pytest.mark.usefixtures("traced")
def test_given_info_level_when_handler_raises_then_debug_context_is_written(
    lambda_context: Any,
) -> None:
    stream = io.StringIO()
    logger = _buffered_logger("buffer-raise", stream)

    @log_context(logger)
    def handler(event: Any, context: Any) -> str:
        logger.debug("detail")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler({}, lambda_context)
    assert _messages(stream) == ["detail"]


@pytest.mark.usefixtures("traced")
def test_given_sampled_invocation_when_it_succeeds_then_debug_lines_are_kept(
    lambda_context: Any,
) -> None:
    stream = io.StringIO()
    logger = _buffered_logger("buffer-sampled", stream, sample_rate=1.0)

    @log_context(logger)
    def handler(event: Any, context: Any) -> str:
        logger.debug("detail")
        return "ok"

    handler({}, lambda_context)
    assert "detail" in _messages(stream)


def test_given_package_logger_when_wired_then_its_info_lines_share_the_json_handler() -> None:
    stream = io.StringIO()
    _buffered_logger("buffer-packages", stream)

    logging.getLogger("lambdakit.some_module").info("run complete", extra={"run_id": "r1"})

    line = json.loads(stream.getvalue().splitlines()[-1])
    assert (line["message"], line["run_id"], line["service"]) == (
        "run complete",
        "r1",
        "buffer-packages",
    )


@pytest.mark.usefixtures("traced")
def test_given_package_logger_when_it_logs_an_error_then_buffered_debug_lines_come_first(
    lambda_context: Any,
) -> None:
    stream = io.StringIO()
    logger = _buffered_logger("buffer-package-error", stream)

    @log_context(logger)
    def handler(event: Any, context: Any) -> str:
        logger.debug("page fetched")
        logging.getLogger("lambdakit.engine").error("run failed")
        return "failed"

    handler({}, lambda_context)
    assert _messages(stream) == ["page fetched", "run failed"]
