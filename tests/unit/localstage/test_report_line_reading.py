"""REPORT lines as Lambda prints them: cold, warm, SnapStart, timeout, errors, X-Ray, consoles."""

from __future__ import annotations

import pytest

from localstage.report_line import ReportLine, ReportParseError, parse_log_tail, parse_report

RID = "8f5b2c1e-2f0a-4a57-9d6b-3f1c0e8a7b21"


def test_a_cold_report_gives_init_duration_and_counts_as_cold() -> None:
    # given a cold start as a python3.13 function prints it (tabs, trailing tab)
    line = (
        f"REPORT RequestId: {RID}\tDuration: 12.34 ms\tBilled Duration: 258 ms\t"
        "Memory Size: 1024 MB\tMax Memory Used: 88 MB\tInit Duration: 245.67 ms\t"
    )
    # when it is parsed
    report = parse_report(line)
    # then every field is read and the invocation is cold
    assert report.request_id == RID
    assert report.duration_ms == 12.34
    assert report.billed_duration_ms == 258
    assert report.memory_size_mb == 1024
    assert report.max_memory_used_mb == 88
    assert report.init_duration_ms == 245.67
    assert report.restore_duration_ms is None
    assert report.cold
    assert report.completed
    assert report.startup_ms == 245.67


def test_a_warm_report_has_no_init_duration() -> None:
    line = (
        f"REPORT RequestId: {RID}\tDuration: 3.05 ms\tBilled Duration: 4 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 41 MB\t"
    )
    report = parse_report(line)
    assert report.init_duration_ms is None
    assert not report.cold
    assert report.startup_ms == 0.0


def test_a_snapstart_restore_reads_restore_and_billed_restore_apart() -> None:
    # given a SnapStart restore: no Init Duration, Restore Duration then Billed Restore Duration
    line = (
        f"REPORT RequestId: {RID}\tDuration: 149.53 ms\tBilled Duration: 313 ms\t"
        "Memory Size: 3538 MB\tMax Memory Used: 163 MB\tRestore Duration: 789.64 ms\t"
        "Billed Restore Duration: 163 ms\t"
    )
    report = parse_report(line)
    # then "Billed Restore Duration" is not mistaken for "Restore Duration", nor for "Duration"
    assert report.duration_ms == 149.53
    assert report.restore_duration_ms == 789.64
    assert report.billed_restore_duration_ms == 163
    assert report.init_duration_ms is None
    assert report.cold
    assert report.startup_ms == 789.64


def test_a_timeout_reads_status_timeout_and_is_not_completed() -> None:
    line = (
        f"REPORT RequestId: {RID}\tDuration: 10000.00 ms\tBilled Duration: 10000 ms\t"
        "Memory Size: 1024 MB\tMax Memory Used: 95 MB\tInit Duration: 301.12 ms\t"
        "Status: timeout"
    )
    report = parse_report(line)
    assert report.status == "timeout"
    assert report.error_type is None
    assert not report.completed
    assert report.init_duration_ms == 301.12


def test_a_runtime_error_reads_status_and_error_type_before_an_xray_suffix() -> None:
    line = (
        f"REPORT RequestId: {RID}\tDuration: 10935.70 ms\tBilled Duration: 10936 ms\t"
        "Memory Size: 1024 MB\tMax Memory Used: 1024 MB\tStatus: error\t"
        "Error Type: Runtime.OutOfMemory\nXRAY TraceId: 1-6ac7d556-032906e375c910cf42cb849e\t"
        "SegmentId: 90cbc97f4ee64a7f\tSampled: true"
    )
    report = parse_report(line.split("\n", maxsplit=1)[0])
    assert report.status == "error"
    assert report.error_type == "Runtime.OutOfMemory"


def test_xray_fields_on_the_same_line_do_not_leak_into_values() -> None:
    line = (
        f"REPORT RequestId: {RID} Duration: 127.10 ms Billed Duration: 154 ms Memory Size: 2048 MB "
        "Max Memory Used: 212 MB Init Duration: 325.93 ms XRAY TraceId: 1-66d978e5-56c7378e556e "
        "SegmentId: 29c3839e6ecb5895 Sampled: true"
    )
    # given a console that shows the tabs as single spaces
    report = parse_report(line)
    assert report.init_duration_ms == 325.93
    assert report.max_memory_used_mb == 212


def test_the_older_format_with_a_space_before_the_tab_still_parses() -> None:
    line = (
        f"REPORT RequestId: {RID}\tDuration: 18018.26 ms\tBilled Duration: 18000 ms \t"
        "Memory Size: 512 MB\tMax Memory Used: 82 MB\t"
    )
    assert parse_report(line).billed_duration_ms == 18000


def test_a_prefixed_line_from_logs_tail_parses() -> None:
    line = (
        f"2023/07/05/[56]374cd7798d 2023-07-05T10:16:34.686000 REPORT RequestId: {RID}\t"
        "Duration: 306.34 ms\tBilled Duration: 610 ms\tMemory Size: 3009 MB\t"
        "Max Memory Used: 155 MB\tRestore Duration: 511.25 ms\tBilled Restore Duration: 303 ms\t"
    )
    report = parse_report(line)
    assert report.restore_duration_ms == 511.25
    assert report.billed_restore_duration_ms == 303


def test_a_log_tail_gives_its_report_with_the_init_report_before_it() -> None:
    # given a tail where init failed, was retried in the invoke phase, then the request failed
    tail = "\n".join(
        [
            "INIT_REPORT Init Duration: 99.65 ms\tPhase: invoke\tStatus: error\t"
            "Error Type: Runtime.ExitError",
            f"START RequestId: {RID} Version: $LATEST",
            f"RequestId: {RID} Error: Runtime exited with error: exit status 1",
            "Runtime.ExitError",
            f"END RequestId: {RID}",
            f"REPORT RequestId: {RID}\tDuration: 120.50 ms\tBilled Duration: 121 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 30 MB\tStatus: error\t"
            "Error Type: Runtime.ExitError",
        ]
    )
    report = parse_log_tail(tail)
    assert report.status == "error"
    assert report.error_type == "Runtime.ExitError"
    assert report.init_report is not None
    assert report.init_report.phase == "invoke"
    assert report.init_report.init_duration_ms == 99.65
    assert report.init_report.error_type == "Runtime.ExitError"


def test_a_log_tail_picks_the_report_of_the_request_asked_for() -> None:
    other = "0e5c8424-0000-4000-8000-000000000000"
    tail = (
        f"REPORT RequestId: {other}\tDuration: 1.00 ms\tBilled Duration: 1 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 20 MB\t\n"
        f"REPORT RequestId: {RID}\tDuration: 2.00 ms\tBilled Duration: 2 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 21 MB\t\n"
    )
    assert parse_log_tail(tail, other).duration_ms == 1.0
    assert parse_log_tail(tail).request_id == RID


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("START RequestId: x Version: $LATEST", "no REPORT line"),
        (f"REPORT RequestId: {RID}\tDuration: 1.00 ms\tMemory Size: 128 MB\t", "Billed Duration"),
        (
            f"REPORT RequestId: {RID}\tDuration: fast\tBilled Duration: 1 ms\tMemory Size: 1 MB\t"
            "Max Memory Used: 1 MB",
            "not a number",
        ),
    ],
)
def test_a_missing_or_broken_report_is_an_error_naming_the_problem(
    text: str, complaint: str
) -> None:
    with pytest.raises(ReportParseError, match=complaint):
        parse_log_tail(text)


@pytest.mark.parametrize(
    "line",
    [
        ReportLine(RID, 5.25, 6, 1024, 60),
        ReportLine(RID, 12.5, 13, 1024, 70, init_duration_ms=280.75),
        ReportLine(RID, 3000.0, 3000, 128, 40, status="timeout"),
        ReportLine(RID, 9.0, 9, 128, 128, status="error", error_type="Runtime.OutOfMemory"),
        ReportLine(
            RID, 27.84, 353, 1024, 96, restore_duration_ms=441.72, billed_restore_duration_ms=325
        ),
    ],
)
def test_a_rendered_report_line_reads_back_the_same(line: ReportLine) -> None:
    # the line the local runtime writes is the line every tool reads: nothing is lost
    assert ReportLine.parse(line.render()) == line


def test_a_snapstart_tail_with_restore_lines_gives_the_restore_report() -> None:
    tail = "\n".join(
        [
            "RESTORE_START Runtime Version: python:3.13.v21\tRuntime Version ARN: arn:aws:lambda:x",
            "RESTORE_REPORT Restore Duration: 441.72 ms",
            f"START RequestId: {RID} Version: 3",
            f"END RequestId: {RID}",
            f"REPORT RequestId: {RID}\tDuration: 27.84 ms\tBilled Duration: 353 ms\t"
            "Memory Size: 1024 MB\tMax Memory Used: 96 MB\tRestore Duration: 441.72 ms\t"
            "Billed Restore Duration: 325 ms\t",
        ]
    )
    report = parse_log_tail(tail)
    assert report.restore_duration_ms == 441.72
    assert report.billed_restore_duration_ms == 325
    assert report.init_report is None
    assert report.cold
