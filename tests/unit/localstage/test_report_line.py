"""The REPORT line and function-name parsing of the local Lambda runtime."""

from __future__ import annotations

import pytest

from localstage.report_line import ReportLine
from localstage.runtime import parse_function_name

REQUEST_ID = "8f5d2b7c-1c1e-4a43-9a8e-2f2b1f6c9d10"


def test_report_line_renders_exactly_like_lambda_on_a_cold_start() -> None:
    # given the figures of a cold invocation
    report = ReportLine(
        request_id=REQUEST_ID,
        duration_ms=12.3412,
        billed_duration_ms=13,
        memory_size_mb=128,
        max_memory_used_mb=45,
        init_duration_ms=123.456,
    )

    # when it is rendered
    line = report.render()

    # then it is Lambda's tab-separated line with a trailing tab
    assert line == (
        f"REPORT RequestId: {REQUEST_ID}\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 45 MB\tInit Duration: 123.46 ms\t"
    )


def test_warm_report_line_has_no_init_duration() -> None:
    # given a warm invocation
    report = ReportLine(REQUEST_ID, 1.5, 2, 256, 60)

    # when it is rendered
    # then no Init Duration field appears
    assert report.render() == (
        f"REPORT RequestId: {REQUEST_ID}\tDuration: 1.50 ms\tBilled Duration: 2 ms\t"
        "Memory Size: 256 MB\tMax Memory Used: 60 MB\t"
    )


def test_failed_invocation_reports_status_and_error_type() -> None:
    # given an invocation that ran out of memory
    report = ReportLine(
        REQUEST_ID, 80.0, 80, 128, 128, status="error", error_type="Runtime.OutOfMemory"
    )

    # when it is rendered
    # then the status and error type close the line
    assert report.render().endswith("\tStatus: error\tError Type: Runtime.OutOfMemory\t")


def test_real_lambda_report_line_parses() -> None:
    # given a REPORT line copied from CloudWatch Logs
    line = (
        "REPORT RequestId: bf5f58db-ef7d-4cb2-b3c6-266eba1bbedb\tDuration: 395.99 ms\t"
        "Billed Duration: 662 ms\tMemory Size: 512 MB\tMax Memory Used: 301 MB\t"
        "Init Duration: 265.72 ms\t\n"
    )

    # when it is parsed
    report = ReportLine.parse(line)

    # then every figure is read
    assert report == ReportLine(
        request_id="bf5f58db-ef7d-4cb2-b3c6-266eba1bbedb",
        duration_ms=395.99,
        billed_duration_ms=662,
        memory_size_mb=512,
        max_memory_used_mb=301,
        init_duration_ms=265.72,
    )


def test_parse_reads_the_report_line_of_a_whole_log_tail() -> None:
    # given a log tail of a timed-out invocation
    log = "\n".join(
        [
            f"START RequestId: {REQUEST_ID} Version: $LATEST",
            "going to sleep",
            f"2026-01-01T00:00:01.000Z {REQUEST_ID} Task timed out after 1.00 seconds",
            f"END RequestId: {REQUEST_ID}",
            ReportLine(REQUEST_ID, 1000.42, 1001, 128, 40, status="timeout").render(),
        ]
    )

    # when it is parsed
    report = ReportLine.parse(log)

    # then the REPORT line's figures and status come back
    assert (report.duration_ms, report.billed_duration_ms, report.status) == (
        1000.42,
        1001,
        "timeout",
    )
    assert report.init_duration_ms is None


def test_text_without_report_line_is_rejected() -> None:
    # given a log with no REPORT line
    # when it is parsed
    # then the caller hears about it
    with pytest.raises(ValueError, match="no REPORT line"):
        ReportLine.parse("START RequestId: x Version: $LATEST\n")


@pytest.mark.parametrize(
    ("duration_ms", "billed"),
    [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (12.34, 13), (999.999, 1000)],
)
def test_billed_duration_rounds_up_to_the_millisecond(duration_ms: float, billed: int) -> None:
    # given a measured duration
    # when it is billed
    # then it is rounded up to the next millisecond, at least 1 ms
    assert ReportLine.billed(duration_ms) == billed


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sync", ("sync", None)),
        ("sync:live", ("sync", "live")),
        ("123456789012:function:sync", ("sync", None)),
        ("arn:aws:lambda:eu-west-1:123456789012:function:sync", ("sync", None)),
        ("arn:aws:lambda:eu-west-1:123456789012:function:sync:$LATEST", ("sync", "$LATEST")),
    ],
)
def test_function_names_in_every_form_resolve_to_name_and_qualifier(
    name: str, expected: tuple[str, str | None]
) -> None:
    # given a function name as boto3 may send it
    # when it is split
    # then the bare name and the qualifier come out
    assert parse_function_name(name) == expected
