"""The disaster-recovery drill on two local stages: clients follow the policy to the secondary.

Two stages stand for the regions (their own ports, moto, stand-in, state file; one API key and
the same upstream data). The drill kills the primary and must see clients served by the secondary
within a bounded time; what is asserted is the order of events and the answers, not a duration.
"""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Final

import pytest
from stage_support import isolated_stage

from localstage.vanta_data import Dataset
from ops.dr_drill import Policy, first_sync, run_drill

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("dr-drill")]

POLICY: Final = Policy(request_interval_s=30, failure_threshold=3, ttl_s=60)
COMPRESSION: Final = 60.0  # a check every 0.5 s, a TTL of 1 s
DEADLINE_S: Final = 60.0


def test_clients_fail_over_to_the_secondary_and_get_fresh_answers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # given two synced stages with one key and the same upstream data
    dataset = Dataset(
        seed=3, vulnerability_count=30, asset_count=6, remediation_count=6, now=datetime.now(UTC)
    )
    key = "local-" + secrets.token_urlsafe(24)
    stages = []
    for name, region in (("primary", "us-east-1"), ("secondary", "us-west-2")):
        stage = isolated_stage(
            tmp_path_factory.mktemp(name), name=f"drill-{name}", dataset=dataset, region=region
        )
        stage.api_key = key
        stages.append(stage)
    primary, secondary = stages
    with ExitStack() as running:
        for stage in stages:
            running.enter_context(stage)
            first_sync(stage)

        # when the drill kills the primary
        report = run_drill(
            primary, secondary, policy=POLICY, compression=COMPRESSION, deadline_s=DEADLINE_S
        )

    # then clients were served by the primary before the kill, never by the secondary
    before = [r for r in report.requests if r.at_s < report.killed_at_s]
    assert before
    assert {(r.region, r.status) for r in before} == {("primary", 200)}
    # the primary's status changed only after the threshold of failed checks
    assert report.primary_unhealthy_at_s is not None
    assert report.primary_unhealthy_at_s > report.killed_at_s
    assert report.failed_checks_before_switch >= POLICY.failure_threshold
    # clients reached the secondary, and from then on every answer came from it
    switched = report.first_served_by_secondary_at_s
    assert switched is not None
    after = [r for r in report.requests if r.at_s >= switched]
    assert after
    assert {(r.region, r.status) for r in after} == {("secondary", 200)}
    # and the secondary's answers are fresh: the same facts, data within its readiness bound
    assert report.secondary_matches_primary
    assert report.secondary_data_age_s is not None
    assert report.secondary_max_age_s is not None
    assert report.secondary_data_age_s <= report.secondary_max_age_s
