"""The API's DynamoDB reads (GetItem, Query) without botocore, errors as StorageError.

``DynamoHttpClient`` answers ``get_item(**params)`` and ``query(**params)`` with the same
arguments and the same wire-format answers as botocore's low-level client, so ``DynamoStore``
and ``DynamoReader`` use either unchanged (the API's read path calls nothing else). The table has
no binary attributes, the one type botocore would decode differently. Errors come out as
``StorageError`` with botocore's message and code, since the API maps storage failures alone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from lambdakit.awsjson import (
    AwsJsonClient,
    AwsServiceError,
    AwsTransportError,
    ConfigurationError,
    LambdaCredentials,
    resolve_endpoint,
)
from vulnstats.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from lambdakit.retry import Deadline

__all__ = ["DynamoHttpClient"]

# DynamoDB's model (dynamodb/2012-08-10/service-2.json): protocol json 1.0, this target prefix.
_TARGET: Final = "DynamoDB_20120810"
# botocore/retries/standard.py: DynamoDB's non-throttling retries back off from 25 ms.
_TRANSIENT_BASE: Final = 0.025


class DynamoHttpClient:
    """GetItem and Query over ``lambdakit.awsjson``; see the module docstring."""

    __slots__ = ("_client",)

    def __init__(self, client: AwsJsonClient) -> None:
        """Wrap a client already set up for DynamoDB (``from_env`` builds one)."""
        self._client = client

    @classmethod
    def from_env(
        cls,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int = 3,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> DynamoHttpClient:
        """A client for the environment's region, endpoint and credentials.

        Raises ``StorageError`` when the environment says no region or a bad endpoint URL.
        """
        try:
            endpoint = resolve_endpoint("dynamodb", environ)
        except ConfigurationError as exc:
            raise StorageError(f"DynamoDB: {exc}", operation="configuration") from exc
        return cls(
            AwsJsonClient(
                service="dynamodb",
                target_prefix=_TARGET,
                endpoint=endpoint,
                credentials=LambdaCredentials(environ, timeout=connect_timeout),
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_attempts=max_attempts,
                transient_base=_TRANSIENT_BASE,
                sleep=sleep,
            )
        )

    @property
    def transport(self) -> AwsJsonClient:
        """The underlying client (its endpoint, timeouts and retry settings)."""
        return self._client

    def set_deadline(self, deadline: Deadline | None) -> None:
        """Bound the retries of the calls that follow (the current invocation's deadline)."""
        self._client.deadline = deadline

    def reset(self) -> None:
        """Close the connection and forget the credentials (after a SnapStart restore)."""
        self._client.close()
        self._client.credentials.reset()

    def get_item(self, **params: Any) -> dict[str, Any]:
        """DynamoDB GetItem."""
        return self._call("GetItem", params)

    def query(self, **params: Any) -> dict[str, Any]:
        """DynamoDB Query (one page)."""
        return self._call("Query", params)

    def _call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        table = str(params.get("TableName", ""))
        try:
            return self._client.call(operation, params)
        except AwsServiceError as exc:
            code: str | None = exc.code
            cause: Exception = exc
        except (AwsTransportError, ConfigurationError) as exc:
            code, cause = None, exc
        raise StorageError(
            f"DynamoDB table {table}: {operation} failed: {cause}",
            resource=table,
            operation=operation,
            code=code,
        ) from cause
