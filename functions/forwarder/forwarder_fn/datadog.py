"""Datadog's metrics intake (POST /api/v2/series): one call, its errors sorted for retry."""

from __future__ import annotations

from typing import Final

import requests

from lambdakit.retry import RetryError, parse_retry_after

__all__ = [
    "DatadogAuthError",
    "DatadogClient",
    "DatadogError",
    "DatadogRejectedError",
    "DatadogTransientError",
    "breaker_counts",
    "is_transient",
    "retry_after_of",
]

SERIES_PATH: Final = "/api/v2/series"
# The API key goes in this header (Datadog API reference, "Authentication").
API_KEY_HEADER: Final = "DD-API-KEY"


class DatadogError(Exception):
    """Base of the forwarder's Datadog errors."""


class DatadogAuthError(DatadogError):
    """401/403: the API key is missing, wrong or revoked; no retry can fix it."""


class DatadogRejectedError(DatadogError):
    """Another 4xx (400, 413...): this payload will never be accepted as it is."""


class DatadogTransientError(DatadogError):
    """5xx, 408, 429, a timeout or a connection error: worth a retry."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        """``retry_after``: seconds the intake asked to wait (its ``Retry-After``), if any."""
        super().__init__(message)
        self.retry_after = retry_after


def is_transient(exc: BaseException) -> bool:
    """Whether a retry may help (the retrier's and the breaker's predicate)."""
    return isinstance(exc, DatadogTransientError)


def breaker_counts(exc: BaseException) -> bool:
    """What counts as a failure for the breaker: a transient error, or retries that ran out."""
    return is_transient(exc) or isinstance(exc, RetryError)


def retry_after_of(exc: BaseException) -> float | None:
    """The wait a 429 or 503 asked for."""
    return exc.retry_after if isinstance(exc, DatadogTransientError) else None


class DatadogClient:
    """Posts series payloads to ``base_url`` (``https://api.<site>``) with the API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        session: requests.Session,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
    ) -> None:
        """Keep the session (pooled connections across invocations) and the key."""
        self.url = base_url.rstrip("/") + SERIES_PATH
        self._headers = {
            API_KEY_HEADER: api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._session = session
        self._timeouts = (connect_timeout, read_timeout)

    def submit(self, payload: bytes, *, read_timeout: float | None = None) -> None:
        """POST one ``{"series": [...]}`` body; returns on 202, raises a ``DatadogError`` else."""
        timeout = (self._timeouts[0], read_timeout or self._timeouts[1])
        try:
            response = self._session.post(
                self.url, data=payload, headers=self._headers, timeout=timeout
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise DatadogTransientError(f"no answer from the metrics intake: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = response.text[:200]
        if status in (401, 403):
            raise DatadogAuthError(
                f"the metrics intake refused the API key (HTTP {status}): check the secret "
                f"named by DATADOG_API_KEY_SECRET_ARN and the Datadog site; {detail}"
            )
        if status in (408, 429) or status >= 500:
            raise DatadogTransientError(
                f"metrics intake answered HTTP {status}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise DatadogRejectedError(f"metrics intake rejected the payload (HTTP {status}): {detail}")
