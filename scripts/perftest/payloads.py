"""The measured payload of each function: an events/ fixture, never a warming ping.

Defaults (override with ``--payload FUNCTION=FILE`` or ``--payload FILE`` for all):

- ApiFunction: ``events/api_get_stats.json`` (GET /stats: one read of the latest snapshot,
  the API's most frequent request).
- SyncFunction: ``events/sync_continuation.json``, the continuation of a run that does not
  exist. It pays the full init and a real invocation through the handler, the idempotency
  layer and the engine (one read of the run record, answered "stale"), but starts no run,
  takes no lock and calls no upstream. Starting real runs (``sync_manual.json``, a scheduled
  event) would measure the Vanta upstream, hold the run lock for minutes and be refused while
  one runs, so such payloads need ``--allow-sync-runs``.
- WarmerFunction: ``events/warmer_scheduled.json`` (its scheduled event).

A warming ping (``{"warmer": true, ...}``) is refused as a measured payload anywhere: the warm
guard answers it before any work, so it would measure nothing the users see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from locate import REPO
from perftest.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DEFAULT_FIXTURES", "Payload", "default_fixture", "load_payload"]

EVENTS: Final = REPO / "events"
DEFAULT_FIXTURES: Final = {
    "ApiFunction": "api_get_stats.json",
    "SyncFunction": "sync_continuation.json",
    "WarmerFunction": "warmer_scheduled.json",
}


@dataclass(frozen=True, slots=True)
class Payload:
    """A measured payload: the bytes sent and the file they came from."""

    source: str
    body: bytes


def default_fixture(*names: str) -> Path | None:
    """The default fixture of a function known by its logical id (or a name containing it)."""
    for logical_id, fixture in DEFAULT_FIXTURES.items():
        if any(logical_id in name for name in names):
            return EVENTS / fixture
    return None


def _is_sync_run(event: Any) -> bool:
    """Whether the event would start a real sync run, as the layer's contract reads it.

    A continuation is not one: for a run the table does not hold (the default fixture's) the
    sync function answers ``stale`` at once, which is what makes it a fair payload to time.
    """
    from vulnstats.triggers import InvalidTriggerError, parse_trigger  # noqa: PLC0415

    try:
        return parse_trigger(event).kind != "continuation"
    except InvalidTriggerError:
        return False


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def load_payload(path: Path, *, function: str, allow_sync_runs: bool = False) -> Payload:
    """Read and check a fixture; UsageError names the file and what is wrong with it."""
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"payload for {function}: cannot read {path}: {error.strerror}") from None
    try:
        event = json.loads(text)
    except ValueError as error:
        raise UsageError(f"payload for {function}: {path} is not JSON: {error}") from None
    if isinstance(event, dict) and event.get("warmer") is True:
        raise UsageError(
            f"payload for {function}: {path} is a warming ping; pings are answered before any "
            "work and are never a measured payload (choose a request fixture from events/)"
        )
    if "SyncFunction" in function and _is_sync_run(event) and not allow_sync_runs:
        raise UsageError(
            f"payload for {function}: {path} starts a real sync run (upstream calls, the run "
            "lock, minutes per invocation); pass --allow-sync-runs to measure that on purpose, "
            "or keep the default events/sync_continuation.json"
        )
    return Payload(source=_display(path), body=json.dumps(event).encode())
