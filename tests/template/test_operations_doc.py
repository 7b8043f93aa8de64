"""docs/operations.md names every alarm of the template, so no alarm lacks a runbook entry."""

from __future__ import annotations

import pytest

from tests.template.cfnview import REPO_ROOT, Template

pytestmark = [pytest.mark.template]


def test_every_alarm_of_the_template_is_named_in_the_runbook(sam_template: Template) -> None:
    # given the template's alarms and the runbook
    alarms = sorted(
        logical_id
        for logical_id, resource in sam_template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    )
    runbook = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    # when we look for each alarm's logical id in backticks
    missing = [alarm for alarm in alarms if f"`{alarm}`" not in runbook]
    # then none is missing (and the template has alarms at all)
    assert alarms
    assert missing == []
