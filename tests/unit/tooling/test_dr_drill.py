"""The failover policy the drill simulates: thresholds, the resolver's answers, the AWS RTO."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.dr_drill import FailoverResolver, HealthStatus, Policy, aws_rto_seconds

REPO = Path(__file__).resolve().parents[3]


def test_a_status_changes_only_after_threshold_consecutive_results() -> None:
    status = HealthStatus(threshold=3)

    assert status.healthy  # new: healthy until there is enough data
    assert [status.record(passed=False) for _ in range(2)] == [False, False]
    assert status.record(passed=True) is False  # a pass breaks the streak
    assert [status.record(passed=False) for _ in range(3)] == [False, False, True]
    assert (status.healthy, status.streak) == (False, 0)
    # and back: three passes in a row again
    assert [status.record(passed=True) for _ in range(3)] == [False, False, True]
    assert (status.healthy, status.streak) == (True, 0)
    assert (status.checks, status.failures) == (9, 5)


def test_the_resolver_answers_primary_then_secondary_then_primary_when_both_fail() -> None:
    resolver = FailoverResolver("http://p", "http://s", threshold=1)

    assert resolver.answer() == ("primary", "http://p")
    resolver.record("primary", passed=False)
    assert resolver.answer() == ("secondary", "http://s")
    resolver.record("secondary", passed=False)
    assert resolver.answer() == ("primary", "http://p")  # every record unhealthy
    resolver.record("secondary", passed=True)
    resolver.record("primary", passed=True)
    assert resolver.answer() == ("primary", "http://p")  # failback once the primary passes


@pytest.mark.parametrize(
    ("policy", "best", "worst"),
    [
        (Policy(30, 3, 60), 60, 30 * 3 + 4 + 2 + 60),
        (Policy(10, 3, 60), 20, 10 * 3 + 6 + 60),
        (Policy(10, 1, 10), 0, 10 + 6 + 10),
    ],
)
def test_the_aws_rto_follows_the_documented_figures(
    policy: Policy, best: float, worst: float
) -> None:
    assert aws_rto_seconds(policy) == (best, worst)


def test_the_policy_is_read_from_the_template_defaults() -> None:
    assert Policy.from_template(REPO / "template.yaml") == Policy(30.0, 3, 60.0)
