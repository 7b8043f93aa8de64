"""Exception types of vulnstats, all derived from one base."""

from __future__ import annotations

from typing import Final

__all__ = [
    "AuthError",
    "DeadlineExceededError",
    "InvalidRecordError",
    "RetriesExhaustedError",
    "StorageError",
    "TransientUpstreamError",
    "UpstreamCircuitOpenError",
    "UpstreamProtocolError",
    "VantaError",
    "VantaHTTPError",
    "VulnStatsError",
    "truncate_body",
]

# Error bodies are undocumented upstream: keep enough to diagnose, never a whole page.
BODY_LIMIT: Final = 2048


def truncate_body(body: bytes | str | None, limit: int = BODY_LIMIT) -> str:
    """An error body as text, cut to ``limit`` characters (an ellipsis marks the cut)."""
    if body is None:
        return ""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    if len(text) <= limit:
        return text
    return text[:limit] + "..."


class VulnStatsError(Exception):
    """Base class of every error raised by vulnstats."""


class InvalidRecordError(VulnStatsError):
    """An upstream record failed validation; the run quarantines it and goes on.

    ``record_id`` is the record's id when it has a usable one, ``reason`` names the field and
    the problem (``"severity: unknown value 'SEVERE'"``), ``entity`` the listing it came from
    (``"vulnerabilities"``, ``"remediations"`` or ``"assets"``, as in ``Page.entity``).
    """

    def __init__(self, record_id: str | None, reason: str, *, entity: str | None = None) -> None:
        """Record which record is invalid and why."""
        self.record_id = record_id
        self.reason = reason
        self.entity = entity
        source = f" from {entity}" if entity else ""
        super().__init__(f"invalid record {record_id or '<no id>'}{source}: {reason}")


class VantaError(VulnStatsError):
    """Base class of the Vanta client's errors: catch it to end a run with a clear status."""


class AuthError(VantaError):
    """Authentication failed: bad credentials, or a 401 that a fresh token did not cure."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        """Keep the HTTP status and the (truncated) body of the failing answer."""
        self.status = status
        self.body = body
        super().__init__(message if status is None else f"{message} (HTTP {status})")


class VantaHTTPError(VantaError):
    """A non-retryable HTTP error (4xx other than 401/408/429): the request itself is wrong."""

    def __init__(self, status: int, body: str, *, url: str) -> None:
        """Keep the status, the raw body (truncated) and the URL path that failed."""
        self.status = status
        self.body = body
        self.url = url
        super().__init__(f"HTTP {status} from {url}: {body[:200]}")


class TransientUpstreamError(VantaError):
    """A failure worth retrying: 408, 429, 5xx, a timeout, a broken connection or a cut body.

    ``status`` is None for transport failures; ``retry_after`` is the parsed ``Retry-After``
    in seconds when the upstream sent one. Seen by callers only as the ``last_error`` of
    ``RetriesExhaustedError`` or the cause of ``DeadlineExceededError``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: str = "",
        url: str = "",
    ) -> None:
        """Describe the failure; see the class docstring."""
        self.status = status
        self.retry_after = retry_after
        self.body = body
        self.url = url
        super().__init__(message)

    @property
    def is_server_failure(self) -> bool:
        """True for failures that say the upstream is unwell (all but 429), for the breaker."""
        return self.status != 429


class UpstreamProtocolError(VantaError):
    """A well-formed answer that breaks the contract (no ``results``, a cursor that loops...)."""


class RetriesExhaustedError(VantaError):
    """Retrying stopped: every attempt failed, or the upstream asked for too long a wait.

    ``reason`` is ``"attempts"`` or ``"retry_after"``; ``last_error`` the last failure.
    """

    def __init__(self, reason: str, attempts: int, last_error: BaseException) -> None:
        """Say why retrying stopped and keep the last failure."""
        self.reason = reason
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            f"upstream call gave up after {attempts} attempt(s) ({reason}): {last_error}"
        )


class DeadlineExceededError(VantaError):
    """No further call can finish before the invocation's deadline: checkpoint and stop.

    Raised before a call starts (never in the middle of one), so the cursor of the last page
    handed out is a safe place to resume.
    """

    def __init__(self, remaining: float, needed: float) -> None:
        """Record the seconds left and the seconds the next step needed."""
        self.remaining = remaining
        self.needed = needed
        super().__init__(
            f"deadline: {max(0.0, remaining):.2f}s left, next upstream call needs {needed:.2f}s"
        )


class UpstreamCircuitOpenError(VantaError):
    """The circuit breaker around the upstream is open; ``retry_in`` seconds until a probe."""

    def __init__(self, name: str, retry_in: float) -> None:
        """Name the breaker and the wait before it lets a probe through."""
        self.name = name
        self.retry_in = retry_in
        super().__init__(f"upstream circuit {name!r} is open; next probe in {retry_in:.1f}s")


class StorageError(VulnStatsError):
    """A storage call (DynamoDB table, S3 bucket) failed; the message names the resource and call.

    ``resource`` is the table or bucket name, ``operation`` the API call (``"BatchWriteItem"``),
    ``code`` the AWS error code when there is one.
    """

    def __init__(
        self, message: str, *, resource: str = "", operation: str = "", code: str | None = None
    ) -> None:
        """Keep the failing resource, operation and error code."""
        self.resource = resource
        self.operation = operation
        self.code = code
        super().__init__(message)
