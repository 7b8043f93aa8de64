"""Every field a saved Logs Insights query reads is in the log lines the stage really writes.

One local stage runs a sync, a warming run, a warmer event that fails, and API traffic with one
500 (a corrupt stored finding); its function and access log lines are captured as CloudWatch Logs
would hold them. A query naming a key our logs do not carry (a renamed key, a typo) fails here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
import requests
from insights import lines_carrying, lines_with_value, python_regex, query_fields
from stage_support import LogCapture, invoke_client, isolated_stage

from bench.logs import CORRUPT_ID, corrupt_finding
from localstage.cfn import load_template
from localstage.vanta_data import Dataset

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("log-queries")]

REPO: Final = Path(__file__).resolve().parents[3]
TEMPLATE: Final = load_template(REPO / "template.yaml")
LOGS: Final = LogCapture()


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("log-queries"),
        name="log-queries",
        dataset=Dataset(
            seed=11,
            now=datetime.now(UTC),
            vulnerability_count=120,
            asset_count=20,
            remediation_count=40,
        ),
        log_sink=LOGS,
        lambda_via_invoke_api=True,  # the warmer's pings reach the stage's API function
    ) as running:
        client = invoke_client(running)
        for function, event in (
            ("SyncFunction", json.loads((REPO / "events" / "sync_manual.json").read_text())),
            ("WarmerFunction", json.loads((REPO / "events" / "warmer_scheduled.json").read_text())),
            ("WarmerFunction", {"not": "a schedule"}),  # an unhandled error: the runtime's line
        ):
            client.invoke(FunctionName=function, Payload=json.dumps(event))
        corrupt_finding(running)
        with requests.Session() as http:
            for path in ("/stats", "/vulnerabilities?limit=5", f"/vulnerabilities/{CORRUPT_ID}"):
                http.get(running.urls["api"] + path, headers={"x-api-key": running.api_key})
        yield running


def _writer_of(group: str) -> str:
    """Logical id of the function or API whose log lines go to log group ``group``."""
    for logical_id, resource in TEMPLATE["Resources"].items():
        props = resource.get("Properties", {})
        if props.get("LoggingConfig", {}).get("LogGroup") == {"Ref": group}:
            return str(logical_id)
        destination = props.get("AccessLogSetting", {}).get("DestinationArn")
        if destination in ({"Fn::GetAtt": [group, "Arn"]}, {"Fn::GetAtt": f"{group}.Arn"}):
            return str(logical_id)
    raise AssertionError(f"nothing in the template writes to {group}")


def _lines_of(stage: LocalStage, groups: list[str]) -> list[str]:
    assert stage.stack is not None
    names = set()
    for group in groups:
        writer = _writer_of(group)
        spec = stage.stack.functions.get(writer)
        names.add(writer if spec is None else spec.function_name)
    return [line for name, line in LOGS.lines() if name in names]


def _group_name(group: str) -> str:
    name = TEMPLATE["Resources"][group]["Properties"]["LogGroupName"]
    return str(name["Fn::Sub"]).replace("${AWS::StackName}", "log-queries")


def _message(line: str) -> str:
    try:
        record: Any = json.loads(line)
    except ValueError:
        return line
    return str(record.get("message", "")) if isinstance(record, dict) else line


QUERIES: Final = sorted(
    logical_id
    for logical_id, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Logs::QueryDefinition"
)


@pytest.mark.parametrize("query_id", QUERIES)
def test_every_field_of_the_query_is_in_real_log_lines(stage: LocalStage, query_id: str) -> None:
    # given the query and the lines its log groups received
    props = TEMPLATE["Resources"][query_id]["Properties"]
    # The stage runs the default warming strategy: a group kept only with the warmer is there.
    groups = [
        (ref["Fn::If"][1] if "Fn::If" in ref else ref)["Ref"] for ref in props["LogGroupNames"]
    ]
    lines = _lines_of(stage, groups)
    parsed = query_fields(props["QueryString"])
    # when we look for each field, each compared value and each regex in them
    missing = sorted(name for name in parsed.fields if not lines_carrying(name, lines))
    unmatched = sorted(
        f"{name} = {value!r}"
        for name, value in parsed.equals.items()
        if not lines_with_value(name, value, lines)
    )
    texts = lines + [_message(line) for line in lines] + [_group_name(g) for g in groups]
    dead_patterns = [
        pattern
        for pattern in parsed.patterns
        if not any(python_regex(pattern).search(text) for text in texts)
    ]
    # then every one is there
    assert lines, f"no log lines reached {groups}"
    assert not missing, f"{query_id} reads fields no log line carries: {missing}"
    assert not unmatched, f"{query_id} compares with values no line holds: {unmatched}"
    assert not dead_patterns, f"{query_id} has regexes that match nothing: {dead_patterns}"


def test_a_renamed_key_is_caught(stage: LocalStage) -> None:
    # given the sync runs query with one key renamed, as a refactor might leave it
    query = TEMPLATE["Resources"]["SyncRunsQuery"]["Properties"]["QueryString"]
    renamed = re.sub(r"\bsync\.counts\.written\b", "sync.counts.stored", query)
    lines = _lines_of(stage, ["SyncLogGroup"])
    # when its fields are looked up, then the renamed one is reported missing
    missing = [f for f in query_fields(renamed).fields if not lines_carrying(f, lines)]
    assert missing == ["sync.counts.stored"]


FILTERS: Final = sorted(
    logical_id
    for logical_id, resource in TEMPLATE["Resources"].items()
    if resource["Type"] in ("AWS::Logs::MetricFilter", "AWS::Logs::SubscriptionFilter")
)
_JSON_TERM: Final = re.compile(r"^\{\s*\$\.([\w.]+)\s*(=|>)\s*(\"[^\"]*\"|\d+)\s*\}$")


@pytest.mark.parametrize("filter_id", FILTERS)
def test_every_filter_pattern_matches_real_lines_of_its_log_group(
    stage: LocalStage, filter_id: str
) -> None:
    # given a metric or subscription filter: one JSON term, `{ $.field = "text" }` or `> number`
    props = TEMPLATE["Resources"][filter_id]["Properties"]
    term = _JSON_TERM.match(props["FilterPattern"])
    assert term is not None, f"{filter_id}: a pattern this test does not read"
    path, operator, literal = term.groups()
    lines = _lines_of(stage, [props["LogGroupName"]["Ref"]])
    carrying = lines_carrying(path, lines)
    # then the field is in real lines of the group, with the type the pattern compares as (a
    # quoted value only matches a JSON string, a number only a JSON number)
    assert carrying, f"{filter_id}: no line of its group has {path}"
    values = [_field(line, path) for line in carrying]
    if operator == "=":
        assert all(isinstance(v, str) for v in values), f"{filter_id}: {path} is not a string"
    else:
        assert all(isinstance(v, int | float) and v > int(literal) for v in values), filter_id


def _field(line: str, dotted: str) -> Any:
    value: Any = json.loads(line)
    for part in dotted.split("."):
        value = value[part]
    return value
