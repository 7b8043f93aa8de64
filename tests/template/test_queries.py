"""Saved Logs Insights queries: one per question, each scoped to the log groups that answer it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pytest
from insights import REPORT_FIELDS, SYSTEM_FIELDS, query_fields

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed, Template

pytestmark = [pytest.mark.template]

FUNCTION_GROUPS: Final = ["SyncLogGroup", "ApiLogGroup", "WarmerLogGroup"]
EXPECTED_GROUPS: Final = {
    "ColdStartQuery": FUNCTION_GROUPS,
    "SlowInvocationsQuery": FUNCTION_GROUPS,
    "ErrorsQuery": FUNCTION_GROUPS,
    "SyncRunsQuery": ["SyncLogGroup"],
    "WarmingQuery": ["ApiLogGroup", "WarmerLogGroup"],
    "ApiLatencyQuery": ["ApiAccessLogGroup"],
}


def _queries(template: Template) -> dict[str, dict[str, object]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Logs::QueryDefinition"
    }


def _scopes(view: Deployed) -> dict[str, list[str]]:
    return {
        name: [ref["Ref"] for ref in query["Properties"]["LogGroupNames"]]
        for name, query in view.of_type("AWS::Logs::QueryDefinition").items()
    }


def test_each_question_has_one_query_scoped_to_the_log_groups_that_answer_it(
    deployed: Callable[..., Deployed],
) -> None:
    # given the deployed stack (warmer strategy), when we read each query's log groups
    view = deployed()
    scopes = _scopes(view)
    # then every question has its query, on exactly its log groups, which the stack creates
    assert scopes == EXPECTED_GROUPS
    for groups in scopes.values():
        for group in groups:
            assert view.of_type("AWS::Logs::LogGroup")[group]


def test_without_the_warmer_no_query_names_its_log_group(
    deployed: Callable[..., Deployed],
) -> None:
    scopes = _scopes(deployed(WarmingStrategy="provisioned"))

    assert "WarmingQuery" not in scopes
    assert all("WarmerLogGroup" not in groups for groups in scopes.values())


def test_queries_are_named_under_the_stack_so_two_stacks_do_not_collide(
    sam_template: Template,
) -> None:
    names = [props["Name"] for props in _queries(sam_template).values()]

    assert all(name["Fn::Sub"].startswith("${AWS::StackName}/") for name in names)  # type: ignore[index]
    assert len(set(map(str, names))) == len(names)


def test_queries_name_only_fields_logs_insights_discovers_or_our_json_lines_carry(
    sam_template: Template,
) -> None:
    # given every query's fields
    for name, props in _queries(sam_template).items():
        fields = query_fields(str(props["QueryString"])).fields
        # then each @ field is a system field or one of a REPORT line (a typo is caught here;
        # the JSON keys are proven against real log lines by the local stage test)
        unknown = {f for f in fields if f.startswith("@")} - SYSTEM_FIELDS - set(REPORT_FIELDS)
        assert not unknown, (name, unknown)
        assert fields, name
