"""docs/openapi.yaml and the resolver agree: same routes, same parameters, same answer shapes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.api_store import NOW, Api, raw_finding
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from api_fn.app import ROUTES
from api_fn.params import (
    FINDING_PARAMETERS,
    HISTORY_PARAMETERS,
    RUNS_PARAMETERS,
    STATS_PARAMETERS,
)
from vulnstats.models import AssetType, parse_vulnerability
from vulnstats.ports import LastComplete, RunRecord, RunStatus
from vulnstats.stats import compute_snapshot

UNAUTHENTICATED = {("GET", "/health"), ("GET", "/health/ready")}
REPO = Path(__file__).resolve().parents[3]
SPEC: dict[str, Any] = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
HANDLED_QUERY = {
    ("GET", "/stats"): STATS_PARAMETERS,
    ("GET", "/stats/history"): HISTORY_PARAMETERS,
    ("GET", "/vulnerabilities"): FINDING_PARAMETERS,
    ("GET", "/sync/runs"): RUNS_PARAMETERS,
}
# A valid value for every documented query parameter.
SAMPLES = {
    "days": "7",
    "severity": "critical",
    "overdue": "false",
    "dueWithinDays": "30",
    "integrationId": "aws",
    "assetType": "SERVER",
    "fixable": "true",
    "includeDeactivated": "true",
    "limit": "5",
}


def _with_snapshot(api: Api) -> None:
    findings = [parse_vulnerability(raw_finding("v1"))]
    api.store.add_snapshot(
        compute_snapshot(findings, [], now=NOW, run_id="r1"),
        run_id="r1",
        computed_at=NOW,
        with_deactivated=compute_snapshot(findings, [], now=NOW, include_deactivated=True),
    )


def _operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }


def _parameters(operation: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in operation.get("parameters", []):
        if "$ref" in entry:
            entry = SPEC["components"]["parameters"][entry["$ref"].rsplit("/", 1)[1]]  # noqa: PLW2901
        out.append(entry)
    return out


def _schema_of(operation: dict[str, Any], status: int) -> dict[str, Any]:
    response = operation["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def _check(body: Any, operation: dict[str, Any], status: int) -> None:
    schema = {**_schema_of(operation, status), "components": SPEC["components"]}
    OAS30Validator(schema).validate(body)


def test_the_document_is_valid_openapi_3() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.")


def test_documented_routes_are_exactly_the_resolver_routes(api: Api) -> None:
    assert set(_operations()) == set(ROUTES)
    # and the resolver really serves each of them (no 404/405 from routing)
    for method, path in ROUTES:
        answer = api.call(method, path.replace("{id}", "x"))
        routed = answer.status != 405 and not str(answer.body).startswith("{'message': 'no route")
        assert routed, (method, path, answer.body)


def test_the_resolver_registers_exactly_the_documented_routes(api: Api) -> None:
    # Powertools keeps its routes in two lists; read them to compare with the document.
    registered = [*api.app._static_routes, *api.app._dynamic_routes]
    as_openapi = {(r.method, r.path.replace("<id>", "{id}")) for r in registered}
    assert as_openapi == set(_operations())


def test_documented_query_parameters_are_the_handled_ones() -> None:
    for key, operation in _operations().items():
        documented = {p["name"] for p in _parameters(operation) if p["in"] == "query"}
        assert documented == set(HANDLED_QUERY.get(key, frozenset())), key


@pytest.mark.parametrize("route", sorted(HANDLED_QUERY))
def test_every_documented_parameter_is_accepted(api: Api, route: tuple[str, str]) -> None:
    _with_snapshot(api)
    for parameter in _parameters(_operations()[route]):
        if parameter["in"] != "query" or parameter["name"] == "cursor":
            continue
        query = {parameter["name"]: SAMPLES[parameter["name"]]}
        answer = api.call(route[0], route[1], query=query)
        assert answer.status == 200, (route, parameter["name"], answer.body)


def test_every_route_documents_400_or_has_no_input_and_500() -> None:
    for key, operation in _operations().items():
        assert "500" in operation["responses"], key
        if key not in UNAUTHENTICATED:
            assert "400" in operation["responses"], key


def test_answers_match_the_documented_schemas(api: Api) -> None:
    # given a store with a snapshot, a finding, a run, a last complete run
    _with_snapshot(api)
    api.store.add_finding(raw_finding("v1"), AssetType.SERVER)
    api.store.add_finding(raw_finding("v2", remediateByDate=None), None)
    api.store.runs["r1"] = RunRecord(
        run_id="r1",
        status=RunStatus.SUCCEEDED,
        trigger="scheduled",
        started_at=NOW - timedelta(hours=1),
        updated_at=NOW,
        finished_at=NOW,
    )
    api.store.last = LastComplete("r1", NOW - timedelta(hours=1), NOW)
    operations = _operations()
    cases = [
        ("GET", "/health", "/health", {}, 200),
        ("GET", "/health/ready", "/health/ready", {}, 200),
        ("GET", "/stats", "/stats", {}, 200),
        ("GET", "/stats/history", "/stats/history", {}, 200),
        ("GET", "/vulnerabilities", "/vulnerabilities", {"limit": "1"}, 200),
        ("GET", "/vulnerabilities", "/vulnerabilities", {"limit": "0"}, 400),
        ("GET", "/vulnerabilities/{id}", "/vulnerabilities/v1", {}, 200),
        ("GET", "/vulnerabilities/{id}", "/vulnerabilities/v9", {}, 404),
        ("GET", "/sync/runs", "/sync/runs", {}, 200),
        ("GET", "/sync/runs/{id}", "/sync/runs/r1", {}, 200),
        ("POST", "/sync", "/sync", {}, 202),
    ]
    for method, route, path, query, status in cases:
        answer = api.call(method, path, query=query)
        assert answer.status == status, (path, answer.body)
        _check(answer.body, operations[(method, route)], status)
    api.store.last = LastComplete("r1", NOW - timedelta(days=2), NOW - timedelta(days=1))
    stale = api.call("GET", "/health/ready")
    assert stale.status == 503
    _check(stale.body, operations[("GET", "/health/ready")], 503)
    api.store.lock = ("r2", NOW + timedelta(minutes=1))
    queued = api.call("POST", "/sync")
    assert (queued.status, queued.body["status"]) == (202, "queued")
    _check(queued.body, operations[("POST", "/sync")], 202)
