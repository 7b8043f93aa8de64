"""The load tool against a real local stage: a handful of requests, zero unexpected answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from stage_support import isolated_stage

from localstage.vanta_data import Dataset
from perftest.load_test import HttpSender, Plan, discover_routes, main, run_load, summarise, warm_up
from vulnstats.triggers import manual_event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("load-stage")]

DATA = Dataset(
    seed=43,
    vulnerability_count=60,
    asset_count=10,
    remediation_count=15,
    now=datetime.now(UTC).replace(microsecond=0),
)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("load-stage"), name="load-stage", dataset=DATA
    ) as running:
        result = running.invoke("SyncFunction", manual_event("load test"))
        assert result.function_error is None, result.payload
        yield running


def test_a_bounded_run_reaches_every_route_with_no_unexpected_answer(stage: LocalStage) -> None:
    # given the stage's API front with data
    sender = HttpSender(stage.urls["api"], stage.api_key)
    routes = discover_routes(sender)
    warm_up(sender, 2)
    # when a small bounded run goes through every route twice
    result = run_load(
        Plan(routes, concurrency=2, max_requests=2 * len(routes), max_seconds=120), sender
    )
    # then every route answered, nothing unexpected, and the run stopped on its request bound
    stats = summarise(result.samples)
    assert set(stats) == {route.name for route in routes}
    assert result.unexpected == 0, [s for s in result.samples if s.kind == "unexpected"]
    assert all(s.ok + s.throttled == s.requests for s in stats.values())
    assert result.stopped_by == "requests"


def test_the_command_reports_a_table_and_exits_zero(
    stage: LocalStage, capsys: pytest.CaptureFixture[str]
) -> None:
    # when `make load-test` runs (what it calls) against the stage's state file, tiny bounds
    code = main(
        [
            "--state-file",
            str(stage.config.state_file),
            "--concurrency",
            "2",
            "--requests",
            "16",
            "--seconds",
            "60",
        ]
    )
    # then it succeeds and prints the per-route table with the reference ratio
    out = capsys.readouterr().out
    assert code == 0
    assert "| `GET /health` |" in out
    assert "p50 / ref" in out
    assert "unexpected: 0" in out
