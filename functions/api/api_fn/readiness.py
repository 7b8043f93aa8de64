"""Readiness: whether this region can serve good data now (Route 53 fails over on it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any, Final

from vulnstats.errors import StorageError

if TYPE_CHECKING:
    from datetime import datetime

    from vulnstats.queries import ReadStore

__all__ = ["READY", "Readiness", "check_readiness"]

READY: Final = "ready"
NOT_READY: Final = "not-ready"


@dataclass(frozen=True, slots=True)
class Readiness:
    """The verdict and its JSON body; ``ready`` False means answer 503."""

    ready: bool
    body: dict[str, Any]


def check_readiness(
    reader: ReadStore, now: datetime, *, max_age_seconds: int, region: str
) -> Readiness:
    """Ready when the table answers and the last complete sync is at most ``max_age_seconds`` old.

    One read (the last complete run), the same one ``/health`` makes: a health checker polling
    every 10 s costs one GetItem each time and nothing else.
    """
    body: dict[str, Any] = {
        "status": READY,
        "region": region,
        "reason": None,
        "lastSuccessfulSync": None,
        "dataAgeSeconds": None,
        "maxDataAgeSeconds": max_age_seconds,
    }
    try:
        last = reader.last_complete()
    except StorageError:
        return _not_ready(body, "table-unreadable", "the state table cannot be read")
    if last is None:
        return _not_ready(body, "no-sync-yet", "no sync has completed in this region yet")
    finished = last.finished_at.astimezone(UTC)
    age = max(0, int((now - finished).total_seconds()))
    body["lastSuccessfulSync"] = {
        "runId": last.run_id,
        "finishedAt": finished.isoformat().replace("+00:00", "Z"),
    }
    body["dataAgeSeconds"] = age
    if age > max_age_seconds:
        return _not_ready(
            body,
            "stale",
            f"the last successful sync finished {age} s ago, more than {max_age_seconds} s",
        )
    return Readiness(ready=True, body=body)


def _not_ready(body: dict[str, Any], reason: str, message: str) -> Readiness:
    return Readiness(
        ready=False, body={**body, "status": NOT_READY, "reason": reason, "message": message}
    )
