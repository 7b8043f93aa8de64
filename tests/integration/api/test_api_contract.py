"""The API on one local stage: contract fuzzing, auth on every route, no secret in any log.

Fuzzing: every operation of docs/openapi.yaml gets generated requests from schemathesis, valid
(positive) and invalid (negative) ones, with the stage's API key so they reach the function. Each
answer must be a non-5xx response whose status code, content type, headers and body the document
describes, and an invalid request must be refused with a 4xx. The example count is bounded and
derandomized, so the suite is reproducible and its length fixed.

Auth: every documented route but /health refuses a missing or wrong key with API Gateway's 403,
and the function never runs for such a request.

Logs: the stage runs at DEBUG with every function line captured, as CloudWatch Logs would keep
it. After the fuzzing, a clean sync, a sync through a token revocation and a sync that fails on
the token endpoint, no line holds the Vanta client id or secret, an access token the stand-in
minted, or the API key. A control then turns on Powertools' event logging and shows that the
same search does find the API key once something logs it.
"""

from __future__ import annotations

import json
import secrets
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from stage_support import LogCapture, invoke_client, isolated_stage

from localstage.vanta_data import Dataset
from vulnstats.triggers import manual_event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from schemathesis import Case

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api-contract")]

REPO: Final = Path(__file__).resolve().parents[3]
DOCUMENT: Final = REPO / "docs" / "openapi.yaml"
DATA: Final = Dataset(
    seed=31,
    vulnerability_count=60,
    asset_count=10,
    remediation_count=10,
    now=datetime.now(UTC).replace(microsecond=0),
)
# Examples per operation and mode. POST /sync starts a real run on every accepted request, so it
# gets fewer; the API answers 409 while one is live.
EXAMPLES: Final = 30
SYNC_EXAMPLES: Final = 8
CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

SCHEMA: Final = schemathesis.openapi.from_path(DOCUMENT)


def _operations() -> list[tuple[str, str]]:
    found = []
    for result in SCHEMA.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document itself is broken: say so, do not skip the route
        found.append((result.ok().method.upper(), result.ok().path))
    return found


OPERATIONS: Final = _operations()
# Negative cases need an input that can be invalid: a typed query parameter or a JSON body. The
# other operations take only free strings (ids, If-None-Match); their one invalid input, a missing
# or wrong API key, is what tests/integration/api/test_api_auth.py sends to every route.
NEGATABLE: Final = {
    ("GET", "/stats/history"),
    ("GET", "/vulnerabilities"),
    ("GET", "/sync/runs"),
    ("POST", "/sync"),
}
CASES: Final = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or (method, path) in NEGATABLE
]


def _case_id(method: str, path: str, mode: GenerationMode) -> str:
    return f"{mode.value}-{method}-{path}"


@dataclass
class Campaign:
    """What the fuzzing sent and saw: requests per case, a failure report per failed case."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)


def leaks(lines: list[tuple[str, str]], values: dict[str, str]) -> dict[str, list[str]]:
    """For each named secret found in the log lines, the lines that hold it."""
    found: dict[str, list[str]] = {}
    for name, value in values.items():
        hits = [f"{function}: {line}" for function, line in lines if value in line]
        if hits:
            found[name] = hits
    return found


LOGS: Final = LogCapture()


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("api-contract"),
        name="api-contract",
        dataset=DATA,
        overrides={"LogLevel": "DEBUG"},  # the most a function ever logs
        log_sink=LOGS,
        lambda_via_invoke_api=True,  # POST /sync starts real runs, as on AWS
    ) as running:
        client = invoke_client(running)
        event = json.loads((REPO / "events" / "sync_manual.json").read_text())
        answer = client.invoke(FunctionName="SyncFunction", Payload=json.dumps(event))
        result = json.loads(answer["Payload"].read())
        assert result["status"] == "succeeded", result
        yield running


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def _fuzz(
    stage: LocalStage,
    session: requests.Session,
    campaign: Campaign,
    *,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = SCHEMA[path][method]
    count = SYNC_EXAMPLES if (method, path) == ("POST", "/sync") else EXAMPLES
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    case_id = _case_id(method, path, mode)
    key = {"x-api-key": stage.api_key}  # fixed, so that negative cases break only the input

    @given(case=operation.as_strategy(generation_mode=mode, headers=key))
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any]) -> None:
        response = case.call(base_url=stage.urls["api"], session=session, headers=key, timeout=60)
        campaign.sent[case_id] += 1
        campaign.statuses[response.status_code] += 1
        case.validate_response(response, checks=checks, headers=key)

    try:
        run()
    except Exception as exc:  # noqa: BLE001 - every case runs; each failure is reported by its test
        campaign.failures[case_id] = "".join(traceback.format_exception(exc))


@pytest.fixture(scope="module")
def campaign(stage: LocalStage, session: requests.Session) -> Campaign:
    """The whole fuzzing campaign, run once before any test reads its results."""
    found = Campaign()
    for method, path, mode in CASES:
        _fuzz(stage, session, found, method=method, path=path, mode=mode)
    return found


@pytest.mark.parametrize(
    ("method", "path", "mode"), [pytest.param(*case, id=_case_id(*case)) for case in CASES]
)
def test_generated_requests_get_documented_answers(
    campaign: Campaign, method: str, path: str, mode: GenerationMode
) -> None:
    # given the document and a stage with synced data; when generated requests hit the front
    case_id = _case_id(method, path, mode)
    # then every answer conformed to the document, or the report says which did not and why
    assert case_id not in campaign.failures, campaign.failures[case_id]
    assert campaign.sent[case_id] > 0


def test_fuzzing_covered_every_route_with_no_server_error(
    campaign: Campaign, record_property: Any
) -> None:
    total = sum(campaign.sent.values())
    record_property("requests_fuzzed", total)
    print(f"fuzzed {total} requests: {dict(sorted(campaign.statuses.items()))}")
    assert total >= 200
    assert not [status for status in campaign.statuses if status >= 500]
    assert {path for _, path in OPERATIONS} == {
        "/health",
        "/health/ready",
        "/stats",
        "/stats/history",
        "/vulnerabilities",
        "/vulnerabilities/{id}",
        "/sync/runs",
        "/sync/runs/{id}",
        "/sync",
    }


# ----- auth on every route -----

SAMPLE_PATHS: Final = {
    "/vulnerabilities/{id}": "/vulnerabilities/v-1",
    "/sync/runs/{id}": "/sync/runs/r-1",
}
# The probes: liveness and readiness (Route 53's health checks send no API key).
PROBES: Final = {"/health", "/health/ready"}
PROTECTED: Final = [(method, path) for method, path in OPERATIONS if path not in PROBES]
WRONG_KEYS: Final[dict[str, Callable[[str], str]]] = {
    "random": lambda key: "local-" + secrets.token_urlsafe(24),
    "one character changed": lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),
    "longer": lambda key: key + "x",
    "prefix": lambda key: key[:-1],
    "other case": lambda key: key.swapcase(),
    "empty": lambda key: "",
}


def _function_runs(stage: LocalStage, logical_id: str) -> int:
    assert stage.stack is not None
    name = stage.stack.functions[logical_id].function_name
    return sum(1 for function, line in LOGS.lines() if function == name and line.startswith("END "))


def _assert_forbidden(response: requests.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {"message": "Forbidden"}
    assert response.headers["x-amzn-ErrorType"] == "ForbiddenException"
    assert response.headers["Content-Type"] == "application/json"


def test_every_route_but_the_probes_is_documented_as_needing_the_key() -> None:
    document = SCHEMA.raw_schema
    assert document["security"] == [{"apiKey": []}]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            expected: list[Any] | None = (
                [] if path in PROBES else None
            )  # None: the document-wide apiKey
            assert operation.get("security") == expected, (method, path)
            if path not in PROBES:
                assert "403" in operation["responses"], (method, path)


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_a_route_refuses_a_request_without_a_key_before_the_function_runs(
    stage: LocalStage, session: requests.Session, method: str, path: str
) -> None:
    # given the function's run count; when a request without a key or with a wrong one arrives
    runs = _function_runs(stage, "ApiFunction")
    url = stage.urls["api"] + SAMPLE_PATHS.get(path, path)
    _assert_forbidden(session.request(method, url, timeout=60))
    for make in WRONG_KEYS.values():
        _assert_forbidden(
            session.request(method, url, headers={"x-api-key": make(stage.api_key)}, timeout=60)
        )
    # a key anywhere but the x-api-key header does not count
    _assert_forbidden(session.request(method, url, params={"api_key": stage.api_key}, timeout=60))
    _assert_forbidden(
        session.request(
            method, url, headers={"Authorization": f"Bearer {stage.api_key}"}, timeout=60
        )
    )
    # then API Gateway answered every one itself: the function did not run
    assert _function_runs(stage, "ApiFunction") == runs
    # and the right key gets through (not 403)
    answer = session.request(method, url, headers={"x-api-key": stage.api_key}, timeout=60)
    assert answer.status_code != 403


def test_the_probes_answer_without_a_key(stage: LocalStage, session: requests.Session) -> None:
    response = session.get(stage.urls["api"] + "/health", timeout=60)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    # the stage has synced: this region is ready to serve
    ready = session.get(stage.urls["api"] + "/health/ready", timeout=60)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


# ----- methods the document does not define -----

UNDOCUMENTED_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO")


@pytest.mark.parametrize("path", sorted({path for _, path in OPERATIONS}))
def test_a_method_the_document_lacks_gets_api_gateways_json_answer_on_every_route(
    stage: LocalStage, session: requests.Session, path: str
) -> None:
    # given a documented path and the methods it does not document (TRACE and a made-up one too)
    documented = {method for method, known in OPERATIONS if known == path}
    url = stage.urls["api"] + SAMPLE_PATHS.get(path, path)
    for method in (m for m in UNDOCUMENTED_METHODS if m not in documented):
        # when each is sent, with the key and without
        for headers in ({"x-api-key": stage.api_key}, {}):
            answer = session.request(method, url, headers=headers, timeout=60)
            # then API Gateway answers it as a route it does not have, in JSON, never a 5xx
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.headers["Content-Type"] == "application/json", (method, path)
            assert answer.json() == {"message": "Missing Authentication Token"}, (method, path)


# ----- no secret in any log line -----


def _sync(stage: LocalStage, reason: str) -> dict[str, Any]:
    """Run a sync to its end; while a run the fuzzing started holds the lock, wait for it."""
    client = invoke_client(stage)
    deadline = time.monotonic() + 120
    while True:
        answer = client.invoke(
            FunctionName="SyncFunction", Payload=json.dumps(manual_event(reason))
        )
        result: dict[str, Any] = json.loads(answer["Payload"].read())
        if result.get("status") != "refused" or time.monotonic() > deadline:
            return result
        time.sleep(0.25)


@pytest.fixture(scope="module")
def faulted_syncs(stage: LocalStage, campaign: Campaign) -> tuple[dict[str, Any], dict[str, Any]]:
    """After the fuzzing: a sync through a revoked token, then one whose credentials are refused."""
    del campaign  # runs after it, so that the log search below covers both
    assert stage.standin is not None
    # a token revoked mid-run: the sync mints a new one once and finishes (the token endpoint's
    # own rate limit is off: these runs mint several tokens a minute)
    stage.standin.set_faults(
        {"token_rate_limit_per_minute": 0, "rules": [{"kind": "revoke_token", "after": 3}]}
    )
    revoked = _sync(stage, "security: token revoked mid-run")
    # the token endpoint refusing the credentials after a revocation (rotated upstream): the
    # run fails fast, with its error logged
    stage.standin.set_faults(
        {
            "token_rate_limit_per_minute": 0,
            "rules": [
                {"kind": "revoke_token", "after": 2},
                {"kind": "token_down", "at": 2, "times": None, "status": 401},
            ],
        }
    )
    refused = _sync(stage, "security: credentials refused")
    stage.standin.set_faults({"rules": []})
    return revoked, refused


def test_syncs_through_a_revoked_token_and_refused_credentials(
    stage: LocalStage, faulted_syncs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    revoked, refused = faulted_syncs
    assert revoked["status"] == "succeeded", revoked
    assert refused["status"] == "failed", refused
    assert "401" in refused["message"]
    assert stage.standin is not None
    assert len(stage.standin.minted_tokens()) >= 3


def _secret_values(stage: LocalStage) -> dict[str, str]:
    assert stage.standin is not None
    credentials = stage.standin.credentials[0]
    values = {
        "Vanta client_id": credentials.client_id,
        "Vanta client_secret": credentials.client_secret,
        "API key": stage.api_key,
    }
    for number, token in enumerate(stage.standin.minted_tokens(), 1):
        values[f"access token #{number}"] = token
    return values


def test_no_log_line_holds_a_secret_and_the_search_finds_one_that_is_logged(
    stage: LocalStage,
    session: requests.Session,
    campaign: Campaign,
    faulted_syncs: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    # given every line the functions printed at DEBUG: first sync, fuzzing, faulted syncs
    assert campaign.sent
    assert faulted_syncs
    lines = LOGS.lines()
    text = "\n".join(line for _, line in lines)
    assert stage.stack is not None
    for logical_id in ("SyncFunction", "ApiFunction"):
        name = stage.stack.functions[logical_id].function_name
        assert any(function == name for function, _ in lines), f"no log line of {logical_id}"
    client = invoke_client(stage)
    for logical_id in ("SyncFunction", "ApiFunction"):
        config = client.get_function_configuration(FunctionName=logical_id)
        assert config["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert "token rejected; minting a new one" in text
    assert "token endpoint rejected the client credentials" in text
    secrets_ = _secret_values(stage)
    # when the search runs; then it finds none of the secret values
    found = leaks(lines, secrets_)
    print(f"searched {len(lines)} log lines for {len(secrets_)} secret values: {len(found)} found")
    assert found == {}, json.dumps(found, indent=2)[:4000]

    # control: once Powertools logs every incoming event (its x-api-key header included)...
    config = client.get_function_configuration(FunctionName="ApiFunction")
    env = dict(config["Environment"]["Variables"])
    client.update_function_configuration(
        FunctionName="ApiFunction",
        Environment={"Variables": env | {"POWERTOOLS_LOGGER_LOG_EVENT": "true"}},
    )
    start = len(LOGS.lines())
    try:
        response = session.get(
            stage.urls["api"] + "/stats", headers={"x-api-key": stage.api_key}, timeout=60
        )
        assert response.status_code == 200
    finally:
        client.update_function_configuration(
            FunctionName="ApiFunction", Environment={"Variables": env}
        )
    # ...the same search reports the API key, and only that
    assert set(leaks(LOGS.lines(start), secrets_)) == {"API key"}
