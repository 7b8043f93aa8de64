"""Where the functions are: qualifiers, samconfig environments, stack outputs, stage files."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

from perftest.errors import AccessDeniedError, UsageError
from perftest.targets import read_samconfig, read_stage_file, split_qualifier, stack_functions

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("my-fn", ("my-fn", None)),
        ("my-fn:live", ("my-fn", "live")),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:my-fn",
            ("arn:aws:lambda:eu-west-1:123456789012:function:my-fn", None),
        ),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:my-fn:7",
            ("arn:aws:lambda:eu-west-1:123456789012:function:my-fn", "7"),
        ),
    ],
)
def test_a_qualifier_is_split_from_names_and_arns(
    name: str, expected: tuple[str, str | None]
) -> None:
    assert split_qualifier(name) == expected


SAMCONFIG = """
version = 0.1
[default.global.parameters]
region = "us-east-1"
[dev.global.parameters]
region = "eu-west-1"
[dev.deploy.parameters]
stack_name = "vulnstats-dev"
[prod.deploy.parameters]
stack_name = "vulnstats-prod"
region = "eu-central-1"
"""


def test_a_samconfig_environment_gives_its_stack_and_region(tmp_path: Path) -> None:
    path = tmp_path / "samconfig.toml"
    path.write_text(SAMCONFIG)
    assert read_samconfig(path, "dev") == ("vulnstats-dev", "eu-west-1")
    assert read_samconfig(path, "prod") == ("vulnstats-prod", "eu-central-1")
    with pytest.raises(UsageError, match=r"no environment 'qa' \(it has: default, dev, prod\)"):
        read_samconfig(path, "qa")
    with pytest.raises(UsageError, match="has no stack_name"):
        read_samconfig(path, "default")


class _Session:
    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str) -> Any:
        assert service == "cloudformation"
        return self._client


def _cloudformation() -> Any:
    return boto3.client(
        "cloudformation",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_a_stack_gives_every_function_named_in_its_outputs() -> None:
    client = _cloudformation()
    with Stubber(client) as stub:
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "vulnstats-dev",
                        "CreationTime": "2026-11-22T09:00:00Z",
                        "StackStatus": "UPDATE_COMPLETE",
                        "Outputs": [
                            {"OutputKey": "ApiFunctionName", "OutputValue": "vs-ApiFunction-1"},
                            {"OutputKey": "ApiFunctionArn", "OutputValue": "arn:..."},
                            {"OutputKey": "SyncFunctionName", "OutputValue": "vs-SyncFunction-2"},
                            {"OutputKey": "StateTableName", "OutputValue": "table"},
                        ],
                    }
                ]
            },
            {"StackName": "vulnstats-dev"},
        )
        found = stack_functions(_Session(client), "vulnstats-dev")
    assert found == {"ApiFunction": "vs-ApiFunction-1", "SyncFunction": "vs-SyncFunction-2"}


@pytest.mark.parametrize(
    ("code", "message", "error", "complaint"),
    [
        ("ValidationError", "Stack with id nope does not exist", UsageError, "does not exist"),
        ("AccessDenied", "not authorized", AccessDeniedError, "cloudformation:DescribeStacks"),
    ],
)
def test_a_missing_or_forbidden_stack_is_named(
    code: str, message: str, error: type[Exception], complaint: str
) -> None:
    client = _cloudformation()
    with Stubber(client) as stub:
        stub.add_client_error("describe_stacks", code, message)
        with pytest.raises(error, match=complaint):
            stack_functions(_Session(client), "nope")


def test_a_stage_file_of_a_dead_process_means_no_stage(tmp_path: Path) -> None:
    info = {
        "pid": os.getpid(),
        "region": "us-east-1",
        "stack_name": "local",
        "invoke_endpoint_url": "http://127.0.0.1:3001",
        "aws_endpoint_url": "http://127.0.0.1:5000",
        "functions": {"ApiFunction": "ApiFunction"},
    }
    path = tmp_path / "stage.json"
    path.write_text(json.dumps(info))
    running = read_stage_file(path)
    assert running is not None
    assert running.lambda_endpoint_url == "http://127.0.0.1:3001"
    assert running.functions == {"ApiFunction": "ApiFunction"}
    path.write_text(json.dumps({**info, "pid": 2**22 + 12345}))  # beyond pid_max: never alive
    assert read_stage_file(path) is None
    assert read_stage_file(tmp_path / "absent.json") is None
