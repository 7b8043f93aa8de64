"""Start a function asynchronously (the sync's continuations, the API's POST /sync)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from lambdakit.clients import get_client
from lambdakit.lazy import lazy_import
from vulnstats.errors import VulnStatsError
from vulnstats.triggers import continuation_event

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import botocore.exceptions
else:
    botocore = lazy_import("botocore.exceptions")

__all__ = ["AsyncInvoker", "InvokeError", "continuation_starter"]


class InvokeError(VulnStatsError):
    """Lambda refused the asynchronous invocation; the message names the function and why."""


class AsyncInvoker:
    """Sends JSON events to one function with InvocationType=Event."""

    __slots__ = ("_client", "function")

    def __init__(self, function: str, *, client: Any = None) -> None:
        """``function`` is a name or (alias-qualified) ARN; ``client`` a Lambda client or None."""
        self.function = function
        self._client = client

    def __call__(self, event: Mapping[str, Any]) -> str:
        """Queue one invocation; returns Lambda's request id."""
        client = self._client if self._client is not None else get_client("lambda")
        try:
            answer = client.invoke(
                FunctionName=self.function,
                InvocationType="Event",
                Payload=json.dumps(event).encode(),
            )
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise InvokeError(f"invoke {self.function}: {code}: {exc}") from exc
        return str(answer.get("ResponseMetadata", {}).get("RequestId", ""))


def continuation_starter(invoker: Callable[[Mapping[str, Any]], str]) -> Callable[[str, int], None]:
    """The sync engine's ``start_continuation``: a ``continue`` event for run and sequence."""

    def start(run_id: str, sequence: int) -> None:
        invoker(continuation_event(run_id, sequence))

    return start
