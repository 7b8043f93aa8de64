"""The API's answers that are not 200: each error type carries its status and JSON body."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "BadRequestError", "ConflictError", "NotFoundError", "UnavailableError"]


class ApiError(Exception):
    """Base of the errors a route raises to answer with a status and a JSON body."""

    status: int = 500

    def __init__(self, message: str, **extra: Any) -> None:
        """``message`` is shown to the client; ``extra`` keys are added to the body."""
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body: ``message`` plus the extra keys."""
        return {"message": self.message, **self.extra}


class BadRequestError(ApiError):
    """400: a parameter (query, path or body) is invalid; the body names it and says why."""

    status = 400

    def __init__(self, parameter: str, reason: str) -> None:
        """Name the parameter and the reason."""
        super().__init__(f"{parameter}: {reason}", parameter=parameter, reason=reason)


class NotFoundError(ApiError):
    """404: no such id or route."""

    status = 404


class ConflictError(ApiError):
    """409: a sync run is in progress."""

    status = 409


class UnavailableError(ApiError):
    """503: nothing to serve yet (no completed sync), or a dependency refused the request."""

    status = 503
