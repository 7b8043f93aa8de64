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


def _runbook() -> str:
    return (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def test_the_redrive_steps_name_make_targets_that_exist() -> None:
    # given the runbook and the Makefile
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    # then the DLQ steps use the make targets, and the Makefile has them
    for target in ("dlq-inspect", "dlq-redrive"):
        assert f"make {target}" in _runbook()
        assert f"\n{target}:" in makefile


def test_the_chaos_runbook_names_the_experiment_and_each_of_its_actions(
    sam_template: Template,
) -> None:
    # given the template's FIS experiment templates
    experiments = {
        logical_id: resource
        for logical_id, resource in sam_template["Resources"].items()
        if resource["Type"] == "AWS::FIS::ExperimentTemplate"
    }
    runbook = _runbook()
    # then each one, its actions and its parameter are in the runbook
    assert experiments
    for logical_id, resource in experiments.items():
        assert f"`{logical_id}`" in runbook
        for action in resource["Properties"]["Actions"]:
            assert f"`{action}`" in runbook, action
    assert "`FisLambdaExtensionLayerArn`" in runbook
