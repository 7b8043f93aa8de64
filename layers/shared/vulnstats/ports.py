"""What the sync engine needs from storage: typed run values and one protocol per store."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from datetime import datetime

    from vulnstats.models import Asset, Entity, Remediation, Vulnerability

__all__ = [
    "Archive",
    "Checkpoint",
    "Counts",
    "LastComplete",
    "Phase",
    "Record",
    "RunInProgressError",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "SnapshotStore",
    "StateItem",
    "StateStore",
    "resumable_run",
]


class Phase(StrEnum):
    """Where a run is; the listings run in this order, then finalize."""

    ASSETS = "assets"
    VULNERABILITIES = "vulnerabilities"
    REMEDIATIONS = "remediations"
    FINALIZE = "finalize"
    DONE = "done"


class RunStatus(StrEnum):
    """A run record's status."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"  # its worker died; found by a later start after the lock lease expired


# A latest run in one of these states is carried on by the next start, not replaced by a new one.
_RESUMABLE: Final = frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.ABANDONED})


type Record = Vulnerability | Remediation | Asset


@dataclass(frozen=True, slots=True)
class StateItem:
    """One validated record to store: the typed model, its raw form and its content hash."""

    record: Record
    raw: Mapping[str, Any]
    content_hash: str

    @property
    def id(self) -> str:
        """The record's upstream id."""
        return self.record.id


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where to resume: the phase, the cursor to send next (None: from the start), the page no."""

    phase: Phase = Phase.ASSETS
    cursor: str | None = None
    page_number: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored on the run record."""
        return {"phase": self.phase.value, "cursor": self.cursor, "page_number": self.page_number}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Inverse of to_dict."""
        return cls(
            phase=Phase(data["phase"]),
            cursor=data.get("cursor"),
            page_number=int(data.get("page_number", 1)),
        )


@dataclass(frozen=True, slots=True)
class Counts:
    """What a run did so far; each invocation adds its share."""

    fetched: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    pages: int = 0
    retries: int = 0

    def plus(self, **deltas: int) -> Counts:
        """A copy with the given counters increased."""
        return replace(
            self, **{name: getattr(self, name) + value for name, value in deltas.items()}
        )

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {
            "fetched": self.fetched,
            "written": self.written,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "quarantined": self.quarantined,
            "pages": self.pages,
            "retries": self.retries,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        """Inverse of to_dict (missing counters are 0)."""
        return cls(**{name: int(data.get(name, 0)) for name in cls().to_dict()})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One sync run, as stored and as served by the API's /sync/runs."""

    run_id: str
    status: RunStatus
    trigger: str  # "scheduled", "manual" or "continuation" (what started the run)
    started_at: datetime
    updated_at: datetime
    reason: str = ""
    finished_at: datetime | None = None
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    counts: Counts = field(default_factory=Counts)
    continuations: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LastComplete:
    """The latest run that finished its listings: the next run's remediation window starts here."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    # Set when the run quarantined remediations: the next run's window starts here at the
    # latest, so a record fixed upstream later is fetched again (the epoch: list them all).
    remediations_retry_from: datetime | None = None


def resumable_run(latest: RunRecord | None) -> RunRecord | None:
    """The run a new start carries on from its checkpoint, or None to start a new run.

    The latest run is carried on unless it succeeded: a failed run resumes where it stopped, and
    one still marked running whose lock lease has expired (its worker died) is taken over. The
    sync engine decides with this, and the API with it promises the run id that will really go
    on. A start never joins a live run: the run lock refuses it first.
    """
    if latest is not None and latest.status in _RESUMABLE:
        return latest
    return None


class RunInProgressError(Exception):
    """Another run holds the lock; ``holder`` is its run id."""

    def __init__(self, holder: str, lease_until: datetime | None = None) -> None:
        """Record who holds the lock and until when."""
        self.holder = holder
        self.lease_until = lease_until
        super().__init__(f"sync run {holder} is in progress")


class StateStore(Protocol):
    """Current state: one item per asset, finding and remediation, with its content hash."""

    def stored_hashes(self, entity: Entity, ids: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each id that exists (absent ids are left out)."""
        ...

    def write(self, entity: Entity, items: Sequence[StateItem]) -> None:
        """Create or replace these items (all of them, retrying unprocessed ones)."""
        ...

    def iter_ids(self, entity: Entity) -> Iterator[str]:
        """Every stored id of an entity, streamed."""
        ...

    def delete(self, entity: Entity, ids: Sequence[str]) -> None:
        """Delete these items (all of them, retrying unprocessed ones)."""
        ...

    def asset_types(self) -> dict[str, str]:
        """asset id -> asset type, for joining findings to their asset."""
        ...

    def iter_vulnerabilities(self) -> Iterator[Vulnerability]:
        """Every stored finding, streamed (the statistics read them all)."""
        ...

    def iter_remediations_since(self, since: datetime) -> Iterator[Remediation]:
        """Stored remediations with remediationDate >= since, streamed."""
        ...


class RunStore(Protocol):
    """Run records, the run lock and the last complete run."""

    def put_run(self, run: RunRecord) -> None:
        """Create or replace a run record."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run by id."""
        ...

    def latest_runs(self, limit: int) -> list[RunRecord]:
        """The most recent runs, newest first."""
        ...

    def acquire_lock(
        self, run_id: str, now: datetime, lease_seconds: int, *, renew: bool = False
    ) -> None:
        """Take the lock for run_id until now + lease_seconds.

        Succeeds when the lock is free or its lease has expired; with ``renew`` also when run_id
        already holds it (a continuation, a checkpoint). Otherwise raises RunInProgressError: a
        new start must never join a live run, even one it means to resume.
        """
        ...

    def release_lock(self, run_id: str) -> None:
        """Release the lock if run_id holds it (no error otherwise)."""
        ...

    def claim_next(self, run_id: str, now: datetime, lease_seconds: int, reason: str = "") -> str:
        """Name run_id the next run (the one queued requests are coalesced into).

        ``reason`` is the first request's: the run records it, whichever message starts it.

        Succeeds when no next run is named, its claim has expired, or run_id already holds it
        (its claim is then renewed until now + lease_seconds). Returns the id that is the next
        run after the call: run_id, or the run another request named first.
        """
        ...

    def next_run(self, now: datetime) -> str | None:
        """The run named next by a live claim, or None."""
        ...

    def next_request(self, now: datetime) -> tuple[str, str] | None:
        """The run named next by a live claim and the reason it was asked for, or None."""
        ...

    def clear_next(self, run_id: str) -> None:
        """Drop the claim if run_id holds it: that run has started (no error otherwise)."""
        ...

    def last_complete(self) -> LastComplete | None:
        """The latest complete run, if any."""
        ...

    def set_last_complete(self, last: LastComplete) -> None:
        """Record a complete run."""
        ...


class SnapshotStore(Protocol):
    """Statistics snapshots: the latest, and one per day for trends."""

    def put_snapshot(
        self,
        snapshot: Mapping[str, Any],
        *,
        run_id: str,
        computed_at: datetime,
        with_deactivated: Mapping[str, Any] | None = None,
    ) -> None:
        """Store as latest and as the entry of computed_at's UTC day; ``with_deactivated`` is
        the same snapshot counting deactivated findings as open (the API's includeDeactivated)."""
        ...


class Archive(Protocol):
    """The raw archive and the quarantine in S3."""

    def put_page(
        self, entity: Entity, *, run_id: str, run_date: str, number: int, body: bytes
    ) -> str:
        """Store one raw page body (gzip); returns its key."""
        ...

    def put_quarantine(
        self,
        entity: Entity,
        *,
        run_id: str,
        run_date: str,
        number: int,
        rejects: Sequence[Mapping[str, Any]],
    ) -> str:
        """Store the rejected records of one page, each with its reason; returns the key."""
        ...

    def iter_archived_ids(self, entity: Entity, *, run_id: str, run_date: str) -> Iterator[str]:
        """Every record id in the run's archived pages of an entity (duplicates possible)."""
        ...

    def has_quarantine(self, entity: Entity, *, run_id: str, run_date: str) -> bool:
        """Whether the run quarantined any record of an entity."""
        ...
