"""The performance tool's errors: each message names what is wrong and what to do."""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "FunctionNotFoundError",
    "GatewayError",
    "Interrupted",
    "PerfTestError",
    "RestoreError",
    "UsageError",
]


class PerfTestError(Exception):
    """Base of the tool's errors; the CLI prints the message and exits non-zero."""


class UsageError(PerfTestError):
    """Bad arguments (counts, sizes, payloads, targets), found before anything is changed."""


class GatewayError(PerfTestError):
    """An AWS call failed for a reason other than the ones below."""


class FunctionNotFoundError(GatewayError):
    """No such function (Lambda's ResourceNotFoundException)."""


class AccessDeniedError(GatewayError):
    """The credentials may not call the operation (AccessDenied, no or bad credentials)."""


class RestoreError(PerfTestError):
    """A function's original configuration could not be put back; the message shows it."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C so every finally block runs."""
