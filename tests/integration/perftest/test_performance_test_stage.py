"""performance_test.py against an isolated local stage: full mode, reports, restored functions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
from stage_support import invoke_client, isolated_stage

from localstage.vanta_data import Dataset

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("perftest-stage")]

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "performance_test.py"
# As `make perf-test` runs it: the layer is on the path for the sync-trigger contract.
SCRIPT_ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'scripts'}:{REPO / 'layers' / 'shared'}"}
SCHEMA = json.loads((REPO / "docs" / "perf-report.schema.json").read_text())
DATA = Dataset(
    seed=5,
    vulnerability_count=40,
    asset_count=5,
    remediation_count=10,
    now=datetime.now(UTC).replace(microsecond=0),
)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(tmp_path_factory.mktemp("perf"), name="perf-stage", dataset=DATA) as up:
        yield up


def _perf(stage: LocalStage, *args: str) -> subprocess.CompletedProcess[str]:
    state_file = stage.config.state_file
    assert state_file is not None
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--local", "--state-file", str(state_file)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
        env=SCRIPT_ENV,
    )


def _configurations(stage: LocalStage) -> dict[str, Any]:
    client = invoke_client(stage)
    assert stage.stack is not None
    found = {}
    for name in stage.stack.functions:
        config = client.get_function_configuration(FunctionName=name)
        found[name] = (config["Environment"]["Variables"], config["MemorySize"])
    return found


def test_full_mode_reports_every_function_and_restores_them(
    stage: LocalStage, tmp_path: Path
) -> None:
    # given the stage's functions as they are before the run
    before = _configurations(stage)
    # when the tool runs in full mode with small counts
    done = _perf(
        stage,
        "full",
        "--cold", "2",
        "--warm", "3",
        "--warmup", "1",
        "--concurrency", "2",
        "--duration", "1",
        "--window-minutes", "5",
        "--output-dir", str(tmp_path),
        "--name", "full",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "full.json").read_text())
    # then the JSON report follows the documented schema and covers every function
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    assert report["target"]["kind"] == "local"
    assert {f["label"] for f in report["functions"]} == set(before)
    for function in report["functions"]:
        cold, warm = function["cold"], function["warm"]
        # then every cold run shows an init duration and no warm run does
        assert cold["measured"] == 2, function["label"]
        assert all(s["init_duration_ms"] is not None for s in cold["samples"])
        assert cold["series"]["init_ms"]["count"] == 2
        assert warm["measured"] == 3, function["label"]
        assert all(s["init_duration_ms"] is None for s in warm["samples"])
        assert warm["series"]["handler_ms"]["count"] == 3
        assert function["concurrent"]["attempted"] >= 2
        # the stage publishes Lambda's Invocations and Errors (from REPORT lines) into moto,
        # never durations or Insights figures, which only Lambda itself measures
        figures = function["metrics"]["values"]
        assert {k for k, v in figures.items() if v is not None} <= {"invocations", "errors"}
    # then the HTML report exists beside it, progress went to stderr, the table to stdout
    assert "<svg" in (tmp_path / "full.html").read_text()
    assert "cold 2/2" in done.stderr
    assert "warm handler (ms)" in done.stdout
    # then every function has its original environment and memory back
    assert _configurations(stage) == before


def _last_modified(stage: LocalStage) -> dict[str, str]:
    client = invoke_client(stage)
    assert stage.stack is not None
    return {
        name: client.get_function_configuration(FunctionName=name)["LastModified"]
        for name in stage.stack.functions
    }


def test_an_unknown_function_changes_nothing(stage: LocalStage, tmp_path: Path) -> None:
    before = _last_modified(stage)
    done = _perf(
        stage, "cold", "--function", "ApiFunction", "--function", "NoSuchFunction",
        "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown function 'NoSuchFunction'" in done.stderr
    assert "ApiFunction" in done.stderr  # the message lists what the stage has
    assert _last_modified(stage) == before  # not even rewritten with the same values
    assert list(tmp_path.iterdir()) == []


# A shell running the suite in the background (`make test &`, nohup) ignores SIGINT and its
# children inherit that: the script is started with Ctrl-C handled as a terminal delivers it.
_WITH_CTRL_C = (
    "import os, runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; sys.path[0] = os.path.dirname(sys.argv[0]); "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def test_ctrl_c_mid_run_restores_every_function(stage: LocalStage, tmp_path: Path) -> None:
    # given a long cold run that has changed the functions' configurations
    before = _configurations(stage)
    state_file = stage.config.state_file
    assert state_file is not None
    process = subprocess.Popen(
        [
            sys.executable, "-c", _WITH_CTRL_C, str(SCRIPT), "cold", "--local",
            "--state-file", str(state_file), "--cold", "200", "--output-dir", str(tmp_path),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=SCRIPT_ENV,
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "cold 2/200" in line:
            break
    assert any("cold 2/200" in line for line in seen), "".join(seen)[-2000:]
    assert _configurations(stage) != before  # the cold-start variable is in place
    # when the user presses Ctrl-C
    process.send_signal(signal.SIGINT)
    try:
        rest = process.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("performance_test.py went on for 120 s after Ctrl-C")
    code = process.returncode
    # then the tool restores, says so, exits 130 and writes no report
    assert code == 130, rest[-2000:]
    assert "restoring the original configuration" in rest
    assert "interrupted" in rest
    assert _configurations(stage) == before
    assert list(tmp_path.iterdir()) == []
