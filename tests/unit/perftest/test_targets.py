"""Where the functions are: qualifiers and the functions a stack's outputs name."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from locate import LocateError, TargetUnavailableError
from perftest.targets import split_qualifier, stack_functions


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
        ("ValidationError", "Stack with id nope does not exist", LocateError, "does not exist"),
        ("AccessDenied", "not authorized", TargetUnavailableError, "DescribeStacks"),
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
