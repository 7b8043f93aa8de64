"""The command line: bad arguments stop before any change; a run writes valid reports."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fakes.lambda_client import FakeLambdaClient

from perftest import cli

REPO = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((REPO / "docs" / "perf-report.schema.json").read_text())
API = "vulnstats-dev-ApiFunction-AbC123"
SYNC = "vulnstats-dev-SyncFunction-XyZ789"


class FakeCloudWatch:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        results = []
        for query in kwargs["MetricDataQueries"]:
            has_data = query["Id"] in ("invocations", "duration_p99_ms")
            results.append({"Id": query["Id"], "Values": [42.0] if has_data else []})
        return {"MetricDataResults": results}


class FakeSession:
    region_name = "us-east-1"

    def __init__(self) -> None:
        self.cloudwatch = FakeCloudWatch()

    def client(self, service: str, **kwargs: Any) -> Any:
        assert service == "cloudwatch"
        return self.cloudwatch


@pytest.fixture
def lambda_client(monkeypatch: pytest.MonkeyPatch) -> FakeLambdaClient:
    client = FakeLambdaClient(
        {
            API: {"env": {"TABLE_NAME": "state"}, "memory": 1024},
            SYNC: {"env": {"TABLE_NAME": "state"}, "memory": 1536},
        }
    )
    session = FakeSession()
    monkeypatch.setattr(cli, "aws_clients", lambda *a, **k: (client, session))
    return client


def _run(*argv: str) -> tuple[int, str]:
    stderr = io.StringIO()
    code = cli.main([*argv, "--region", "us-east-1"], stderr=stderr)
    return code, stderr.getvalue()


def _changes(client: FakeLambdaClient) -> list[tuple[str, str]]:
    return [call for call in client.calls if call[0] in ("update", "invoke")]


def test_an_unknown_function_stops_before_anything_changes(
    lambda_client: FakeLambdaClient,
) -> None:
    # given one real function and one that does not exist
    code, err = _run("cold", "--function", API, "--function", "no-such-function")
    # then the run stops with a message naming it, and the real one was not touched
    assert code == 1
    assert "function 'no-such-function' not found" in err
    assert _changes(lambda_client) == []


def test_missing_permissions_stop_before_anything_changes(lambda_client: FakeLambdaClient) -> None:
    lambda_client.denied.add(SYNC)
    code, err = _run("full", "--function", API, "--function", SYNC)
    assert code == 1
    assert "not allowed to read the configuration of" in err
    assert "AccessDeniedException" in err
    assert _changes(lambda_client) == []


@pytest.mark.parametrize(
    ("flag", "value", "complaint"),
    [
        ("--cold", "0", "must be at least 1, got 0"),
        ("--warm", "-5", "must be at least 1, got -5"),
        ("--concurrency", "0", "must be at least 1"),
        ("--duration", "0", "must be above 0"),
        ("--memory-sizes", "64,1024", "outside Lambda's 128-10240 MB"),
    ],
)
def test_zero_or_negative_counts_are_refused_by_name(
    lambda_client: FakeLambdaClient,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    complaint: str,
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["cold", "--function", API, flag, value])
    assert stopped.value.code == 2
    assert complaint in capsys.readouterr().err
    assert lambda_client.calls == []


def test_a_warming_ping_is_never_a_measured_payload(lambda_client: FakeLambdaClient) -> None:
    code, err = _run("cold", "--function", API, "--payload", f"{API}=events/api_warming_ping.json")
    assert code == 2
    assert "is a warming ping" in err
    assert _changes(lambda_client) == []


def test_a_sync_run_payload_needs_an_explicit_opt_in(lambda_client: FakeLambdaClient) -> None:
    code, err = _run("cold", "--function", SYNC, "--payload", "events/sync_manual.json")
    assert code == 2
    assert "--allow-sync-runs" in err
    assert _changes(lambda_client) == []


def test_an_alias_cannot_be_cold_started_by_configuration(lambda_client: FakeLambdaClient) -> None:
    code, err = _run("cold", "--function", f"{API}:live")
    assert code == 2
    assert "cannot force cold starts" in err
    assert lambda_client.calls == []


def test_no_target_at_all_is_a_usage_error(lambda_client: FakeLambdaClient) -> None:
    code, err = _run("warm")
    assert code == 2
    assert "nothing to measure" in err


def test_a_full_run_writes_schema_valid_reports_and_restores(
    lambda_client: FakeLambdaClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given two functions, default payloads, small counts
    code, err = _run(
        "full",
        "--function",
        API,
        "--function",
        SYNC,
        "--cold",
        "3",
        "--warm",
        "4",
        "--warmup",
        "1",
        "--concurrency",
        "2",
        "--duration",
        "0.05",
        "--output-dir",
        str(tmp_path),
        "--name",
        "run",
    )
    assert code == 0, err
    report = json.loads((tmp_path / "run.json").read_text())
    # then the report follows the documented schema
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    api = report["functions"][0]
    assert api["payload"] == "events/api_get_stats.json"
    assert report["functions"][1]["payload"] == "events/sync_continuation.json"
    # then cold runs have an init duration, warm runs do not, and the counts add up
    assert api["cold"]["measured"] == 3
    assert all(s["init_duration_ms"] == 250.0 for s in api["cold"]["samples"])
    assert api["cold"]["series"]["cold_start_ms"]["p50"] == 255.0
    assert api["warm"]["measured"] == 4
    assert all(s["init_duration_ms"] is None for s in api["warm"]["samples"])
    assert api["metrics"]["values"]["invocations"] == 42.0
    assert api["metrics"]["values"]["errors"] is None
    # then progress went to stderr, the table to stdout, and the functions are as before
    assert "cold 3/3" in err
    assert "restoring the original configuration" in err
    assert "cold start = init + handler" in capsys.readouterr().out
    assert lambda_client.functions[API] == {"env": {"TABLE_NAME": "state"}, "memory": 1024}


def test_the_html_report_is_self_contained(lambda_client: FakeLambdaClient, tmp_path: Path) -> None:
    code, err = _run(
        "sweep",
        "--function",
        API,
        "--cold",
        "2",
        "--warm",
        "3",
        "--warmup",
        "1",
        "--memory-sizes",
        "512,1024",
        "--output-dir",
        str(tmp_path),
        "--name",
        "sweep",
    )
    assert code == 0, err
    page = (tmp_path / "sweep.html").read_text()
    # then nothing is fetched from anywhere: no http(s) src/href, no script, no link tag
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page
    # then it holds the cold and warm histograms and the sweep curves as inline SVG
    assert page.count("<svg") >= 4
    assert "Cold start at 512 MB (n=2)" in page
    assert "Memory sweep: cold start" in page
    assert "Memory sweep: warm handler" in page
    report = json.loads((tmp_path / "sweep.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    assert [p["memory_mb"] for p in report["functions"][0]["sweep"]] == [512, 1024]
    assert lambda_client.functions[API]["memory"] == 1024
