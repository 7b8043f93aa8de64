"""An in-memory stand-in for boto3's Lambda client: configurations, waiter and invocations."""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from collections.abc import Callable

REPORT = (
    "REPORT RequestId: {rid}\tDuration: {duration:.2f} ms\tBilled Duration: {billed} ms\t"
    "Memory Size: {memory} MB\tMax Memory Used: 60 MB\t{init}"
)


class FakeWaiter:
    def __init__(self, client: FakeLambdaClient) -> None:
        self._client = client

    def wait(self, FunctionName: str, WaiterConfig: dict[str, int]) -> None:  # noqa: N803
        self._client.calls.append(("wait", FunctionName))


class FakeLambdaClient:
    """Functions with an environment and memory; a new environment means a cold next call.

    ``on_invoke(name, n)`` runs before the n-th invocation (0-based) and may raise, to
    simulate a failure mid-run.
    """

    def __init__(self, functions: dict[str, dict[str, Any]]) -> None:
        self.functions = {name: dict(config) for name, config in functions.items()}
        self.calls: list[tuple[str, str]] = []
        self.cold: dict[str, bool] = dict.fromkeys(functions, True)
        self.invocations = 0
        self.on_invoke: Callable[[str, int], None] | None = None
        self.denied: set[str] = set()
        self.fail_updates_after: int | None = None

    def _function(self, name: str, operation: str) -> dict[str, Any]:
        if name in self.denied:
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, operation
            )
        if name not in self.functions:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ResourceNotFoundException",
                        "Message": f"Function not found: {name}",
                    }
                },
                operation,
            )
        return self.functions[name]

    def _answer(self, name: str) -> dict[str, Any]:
        config = self.functions[name]
        return {
            "FunctionName": name,
            "FunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
            "MemorySize": config["memory"],
            "Timeout": 10,
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Environment": {"Variables": dict(config["env"])},
            "RevisionId": str(uuid.uuid4()),
            "State": "Active",
            "LastUpdateStatus": "Successful",
        }

    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:  # noqa: N803
        self._function(FunctionName, "GetFunctionConfiguration")
        self.calls.append(("get", FunctionName))
        return self._answer(FunctionName)

    def update_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        name = kwargs["FunctionName"]
        config = self._function(name, "UpdateFunctionConfiguration")
        updates = sum(1 for call in self.calls if call[0] == "update")
        if self.fail_updates_after is not None and updates >= self.fail_updates_after:
            raise ClientError(
                {"Error": {"Code": "ServiceException", "Message": "try later"}},
                "UpdateFunctionConfiguration",
            )
        self.calls.append(("update", name))
        config["env"] = dict(kwargs["Environment"]["Variables"])
        if "MemorySize" in kwargs:
            config["memory"] = kwargs["MemorySize"]
        self.cold[name] = True
        return self._answer(name)

    def get_waiter(self, name: str) -> FakeWaiter:
        assert name == "function_updated"
        return FakeWaiter(self)

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        name = kwargs["FunctionName"]
        config = self._function(name, "Invoke")
        if kwargs.get("InvocationType") == "DryRun":
            self.calls.append(("dryrun", name))
            return {"StatusCode": 204, "Payload": io.BytesIO(b"")}
        if self.on_invoke is not None:
            self.on_invoke(name, self.invocations)
        self.invocations += 1
        self.calls.append(("invoke", name))
        cold, self.cold[name] = self.cold[name], False
        rid = str(uuid.uuid4())
        line = REPORT.format(
            rid=rid,
            duration=5.0,
            billed=5,
            memory=config["memory"],
            init="Init Duration: 250.00 ms\t" if cold else "",
        )
        return {
            "StatusCode": 200,
            "LogResult": base64.b64encode(line.encode()).decode(),
            "Payload": io.BytesIO(json.dumps({"statusCode": 200}).encode()),
        }
