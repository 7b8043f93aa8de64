"""The sync run: stream the three listings into state and archive, checkpointed, then finalize.

The design and its invariants are in docs/sync.md. The engine only sees ports: the Vanta client,
the stores and the archive are passed in, as are time, the invocation's remaining time and the
way to start a continuation, so every path is tested with fakes.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from lambdakit.metrics import NullMetricSink
from vulnstats.errors import DeadlineExceededError, InvalidRecordError, VantaError
from vulnstats.models import (
    AssetType,
    content_hash,
    parse_asset,
    parse_remediation,
    parse_vulnerability,
)
from vulnstats.ports import (
    Checkpoint,
    Counts,
    LastComplete,
    Phase,
    RunInProgressError,
    RunRecord,
    RunStatus,
    StateItem,
    resumable_run,
)
from vulnstats.stats import SnapshotAggregator
from vulnstats.triggers import (
    ContinuationTrigger,
    InvocationStatus,
    ManualTrigger,
    ScheduledTrigger,
)
from vulnstats.vanta import remediation_window_start

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from lambdakit.metrics import MetricSink
    from vulnstats.models import Entity
    from vulnstats.ports import Archive, RunStore, SnapshotStore, StateStore
    from vulnstats.triggers import Trigger
    from vulnstats.vanta import ClientStats, Page

__all__ = ["RunOutcome", "SyncConfig", "SyncEngine", "Upstream", "new_run_id"]

_LOG: Final = logging.getLogger(__name__)
_LISTINGS: Final[tuple[Phase, ...]] = (Phase.ASSETS, Phase.VULNERABILITIES, Phase.REMEDIATIONS)
_ENTITY: Final[Mapping[Phase, Entity]] = {
    Phase.ASSETS: "assets",
    Phase.VULNERABILITIES: "vulnerabilities",
    Phase.REMEDIATIONS: "remediations",
}
_STATS_WINDOW: Final = timedelta(days=90)
_EVERYTHING: Final = datetime(1970, 1, 1, tzinfo=UTC)  # a window start before any record
_KNOWN_ASSET_TYPES: Final = frozenset(AssetType)

# Metric names (vulnstats.metrics.SYNC_METRICS lists them for the dashboard and alarms).
_METRIC_OF_COUNT: Final = {
    "fetched": "RecordsFetched",
    "written": "RecordsWritten",
    "unchanged": "RecordsUnchanged",
    "deleted": "RecordsDeleted",
    "quarantined": "RecordsQuarantined",
    "retries": "SyncRetries",
}


class Upstream(Protocol):
    """The listings a run reads (vulnstats.vanta.VantaClient is the real one)."""

    @property
    def stats(self) -> ClientStats:
        """Requests, pages and tokens so far (for the retries metric)."""
        ...

    def iter_assets(
        self,
        start_cursor: str | None = None,
        *,
        page_size: int | None = None,
        first_page_number: int = 1,
    ) -> Iterator[Page]:
        """Pages of assets after start_cursor."""
        ...

    def iter_vulnerabilities(
        self,
        start_cursor: str | None = None,
        *,
        page_size: int | None = None,
        first_page_number: int = 1,
    ) -> Iterator[Page]:
        """Pages of findings (those without an SLA included) after start_cursor."""
        ...

    def iter_remediations(
        self,
        remediated_after: datetime | None,
        start_cursor: str | None = None,
        *,
        page_size: int | None = None,
        first_page_number: int = 1,
    ) -> Iterator[Page]:
        """Pages of remediations at or after remediated_after (None: all)."""
        ...


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Run policy (the sync function's settings fill it)."""

    time_margin_seconds: float = 90.0  # below this much remaining time, continue in a new call
    # The lease runs to the invocation's deadline plus this margin (renewed at each checkpoint),
    # so the redelivered message of a dead worker takes the run over soon after the deadline.
    lease_margin_seconds: float = 30.0
    lock_lease_seconds: int = 960  # the lease's ceiling: longer than one invocation (900 s)
    max_continuations: int = 200  # a run that needs more is failed, not looped forever
    page_size: int = 100


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one invocation did, for the handler's answer and log line."""

    status: InvocationStatus
    run_id: str | None
    message: str
    counts: Counts = field(default_factory=Counts)  # this invocation's share
    run_counts: Counts = field(default_factory=Counts)  # the whole run's so far
    retry_after: float | None = None  # refused: seconds until the live run's lease ends

    def to_answer(self) -> dict[str, Any]:
        """The sync function's JSON answer (what the DLQ tool and the local stage read)."""
        return {
            "status": self.status.value,
            "run_id": self.run_id,
            "message": self.message,
            "counts": self.counts.to_dict(),
            "run_counts": self.run_counts.to_dict(),
            "retry_after": self.retry_after,
        }


def new_run_id(now: datetime) -> str:
    """A run id that sorts by start time: ``YYYYMMDDTHHMMSSZ-<8 hex>``."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


class _Continue(Exception):  # noqa: N818 - control flow, not an error
    """Raised inside a run when the invocation must hand over to a continuation."""


class SyncEngine:
    """Runs, resumes and finishes sync runs over the given ports (one engine per invocation)."""

    _current: RunRecord  # the latest saved state of the run in progress

    def __init__(
        self,
        *,
        client: Upstream,
        state: StateStore,
        runs: RunStore,
        snapshots: SnapshotStore,
        archive: Archive,
        start_continuation: Callable[[str, int], None],
        remaining_seconds: Callable[[], float],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        config: SyncConfig | None = None,
        metrics: MetricSink | None = None,
        run_id_factory: Callable[[datetime], str] = new_run_id,
    ) -> None:
        """Wire the collaborators; nothing is read or written until start or resume."""
        self._client = client
        self._state = state
        self._runs = runs
        self._snapshots = snapshots
        self._archive = archive
        self._start_continuation = start_continuation
        self._remaining = remaining_seconds
        self._clock = clock
        self._config = config or SyncConfig()
        self._metrics: MetricSink = metrics if metrics is not None else NullMetricSink()
        self._new_run_id = run_id_factory
        self._done = Counts()  # this invocation's counters

    # ------------------------------------------------------------------ entry points

    def handle(self, trigger: Trigger) -> RunOutcome:
        """Start (schedule, person) or carry on (continuation) the run a trigger asks for."""
        match trigger:
            case ContinuationTrigger(run_id=run_id, sequence=sequence):
                return self.resume(run_id, sequence)
            case ManualTrigger(reason=reason, run_id=run_id):
                return self.start(trigger.kind, reason, run_id)
            case ScheduledTrigger():
                return self.start(trigger.kind)

    def start(self, trigger: str, reason: str = "", run_id: str | None = None) -> RunOutcome:
        """Start a run (or resume the latest failed or abandoned one); refused while one runs.

        A request naming its run (POST /sync promised that id) is coalesced when that run is
        live or done. A start without a name takes the next run's name when one was promised,
        so the requests queued behind it are carried by this run.
        """
        now = self._clock()
        if run_id is not None:
            named = self._runs.get_run(run_id)
            if named is not None and named.status is RunStatus.SUCCEEDED:
                return RunOutcome(
                    InvocationStatus.COALESCED, run_id, f"run {run_id} carried this request"
                )
        latest = resumable_run(next(iter(self._runs.latest_runs(1)), None))
        if latest is not None:
            lock_id = latest.run_id
        else:
            lock_id = run_id or self._runs.next_run(now) or self._new_run_id(now)
        try:
            self._runs.acquire_lock(lock_id, now, self._lease())
        except RunInProgressError as busy:
            if busy.holder == run_id:
                return RunOutcome(
                    InvocationStatus.COALESCED, run_id, f"run {run_id} is live: it carries this"
                )
            wait = None if busy.lease_until is None else (busy.lease_until - now).total_seconds()
            return RunOutcome(
                InvocationStatus.REFUSED,
                busy.holder,
                f"sync run {busy.holder} is in progress",
                retry_after=max(1.0, wait) if wait is not None else None,
            )
        # Requests promised this run are carried from now on: a new request names a new one.
        self._runs.clear_next(lock_id)
        if latest is not None:
            # Its lease had expired (a dead worker) or it had failed: carry on from its checkpoint.
            # Taking it over starts a new continuation epoch, so a continuation event of the old
            # worker that arrives late is stale instead of joining this one.
            run = replace(
                latest,
                status=RunStatus.RUNNING,
                error=None,
                updated_at=now,
                continuations=latest.continuations + 1,
            )
            _LOG.info(
                "resuming run", extra={"run_id": run.run_id, "previous_status": latest.status}
            )
        else:
            run = RunRecord(
                run_id=lock_id,
                status=RunStatus.RUNNING,
                trigger=trigger,
                reason=reason,
                started_at=now,
                updated_at=now,
            )
            _LOG.info("run started", extra={"run_id": run.run_id, "trigger": trigger})
        self._runs.put_run(run)
        return self._execute(run)

    def resume(self, run_id: str, sequence: int) -> RunOutcome:
        """Carry on a run in a continuation invocation; a stale or replayed one does nothing."""
        run = self._runs.get_run(run_id)
        if run is None:
            return RunOutcome(InvocationStatus.STALE, run_id, f"no sync run {run_id}")
        if run.status is not RunStatus.RUNNING or run.continuations != sequence:
            return RunOutcome(
                InvocationStatus.STALE,
                run_id,
                f"continuation {sequence} of run {run_id} is not current "
                f"(status {run.status}, continuation {run.continuations})",
            )
        try:
            self._runs.acquire_lock(run_id, self._clock(), self._lease(), renew=True)
        except RunInProgressError as busy:
            return RunOutcome(
                InvocationStatus.REFUSED, busy.holder, f"sync run {busy.holder} holds the lock"
            )
        return self._execute(run)

    # ------------------------------------------------------------------ the run

    def _execute(self, run: RunRecord) -> RunOutcome:
        self._current = run
        try:
            while run.checkpoint.phase is not Phase.DONE:
                if run.checkpoint.phase is Phase.FINALIZE:
                    run = self._finalize(run)
                else:
                    run = self._listing(run)
        except (_Continue, DeadlineExceededError):
            return self._hand_over(self._current)
        except VantaError as exc:
            return self._fail(self._current, f"{type(exc).__name__}: {exc}")
        finally:
            self._emit_metrics()
        return RunOutcome(
            InvocationStatus.SUCCEEDED,
            run.run_id,
            "run complete",
            counts=self._done,
            run_counts=run.counts,
        )

    def _listing(self, run: RunRecord) -> RunRecord:
        phase = run.checkpoint.phase
        entity = _ENTITY[phase]
        self._current = run
        pages = self._pages(phase, run.checkpoint)
        prepare = self._preparer(entity)
        for page in pages:
            run = self._store_page(run, entity, page, prepare)
            self._current = run
            if run.checkpoint.phase is phase and self._out_of_time():
                raise _Continue
        if run.checkpoint.phase is phase:  # an empty listing yields no page
            run = self._checkpoint(run, Checkpoint(_next_phase(phase)))
        self._current = run
        if self._out_of_time():
            raise _Continue
        return run

    def _pages(self, phase: Phase, checkpoint: Checkpoint) -> Iterator[Page]:
        common: dict[str, Any] = {
            "page_size": self._config.page_size,
            "first_page_number": checkpoint.page_number,
        }
        if phase is Phase.ASSETS:
            return self._client.iter_assets(checkpoint.cursor, **common)
        if phase is Phase.VULNERABILITIES:
            return self._client.iter_vulnerabilities(checkpoint.cursor, **common)
        return self._client.iter_remediations(
            self._remediation_window(), checkpoint.cursor, **common
        )

    def _remediation_window(self) -> datetime | None:
        """Where this run's remediation listing starts (None: all of them).

        The last complete run's start minus the overlap, unless that run quarantined
        remediations: then no later than its own window, so a record fixed upstream since is
        fetched again instead of staying missing (and it stays put while they stay malformed).
        The last complete run does not change during a run, so every continuation agrees.
        """
        last = self._runs.last_complete()
        if last is None:
            return None
        since = remediation_window_start(last.started_at)
        retry_from = last.remediations_retry_from
        if retry_from is None or since is None:
            return since
        return min(since, retry_from)

    def _preparer(self, entity: Entity) -> Callable[[Mapping[str, Any]], StateItem]:
        """Parse-and-hash for one entity; findings carry the type of their asset."""
        if entity == "assets":
            return lambda raw: StateItem(parse_asset(raw), raw, content_hash(raw))
        if entity == "remediations":
            return lambda raw: StateItem(parse_remediation(raw), raw, content_hash(raw))
        asset_types = {
            asset_id: AssetType(value)
            for asset_id, value in self._state.asset_types().items()
            if value in _KNOWN_ASSET_TYPES
        }

        def prepare_vulnerability(raw: Mapping[str, Any]) -> StateItem:
            record = parse_vulnerability(raw)
            asset_type = asset_types.get(record.asset_id)
            # The hash covers the joined asset type: a finding whose asset changed type changed.
            digest = content_hash({"record": raw, "assetType": asset_type})
            return StateItem(record.with_asset_type(asset_type), raw, digest)

        return prepare_vulnerability

    def _store_page(
        self,
        run: RunRecord,
        entity: Entity,
        page: Page,
        prepare: Callable[[Mapping[str, Any]], StateItem],
    ) -> RunRecord:
        """Archive, validate, write what changed, quarantine the rest, then checkpoint."""
        run_date = f"{run.started_at.astimezone(UTC):%Y-%m-%d}"
        self._archive.put_page(
            entity, run_id=run.run_id, run_date=run_date, number=page.number, body=page.raw
        )
        items, rejects = _validate(page.records, prepare)
        if rejects:
            self._archive.put_quarantine(
                entity, run_id=run.run_id, run_date=run_date, number=page.number, rejects=rejects
            )
            _LOG.warning(
                "records quarantined",
                extra={
                    "run_id": run.run_id,
                    "entity": entity,
                    "page": page.number,
                    "count": len(rejects),
                },
            )
        stored = self._state.stored_hashes(entity, [item.id for item in items])
        changed = _changed(items, stored)
        if changed:
            self._state.write(entity, changed)
        delta = {
            "fetched": len(page.records),
            "written": len(changed),
            "unchanged": len(items) - len(changed),
            "quarantined": len(rejects),
            "pages": 1,
            "retries": self._retries_so_far() - self._done.retries,
        }
        self._done = self._done.plus(**delta)
        if page.has_next and page.end_cursor is not None:
            checkpoint = Checkpoint(run.checkpoint.phase, page.end_cursor, page.number + 1)
        else:
            checkpoint = Checkpoint(_next_phase(run.checkpoint.phase))
        return self._checkpoint(replace(run, counts=run.counts.plus(**delta)), checkpoint)

    def _checkpoint(self, run: RunRecord, checkpoint: Checkpoint) -> RunRecord:
        now = self._clock()
        run = replace(run, checkpoint=checkpoint, updated_at=now)
        # Renew first: if the lease was lost, the run must not record progress it does not own.
        self._runs.acquire_lock(run.run_id, now, self._lease(), renew=True)
        self._runs.put_run(run)
        self._current = run
        return run

    def _finalize(self, run: RunRecord) -> RunRecord:
        """Delete what vanished from the complete listings, snapshot the state, close the run.

        Findings are read once: each stored finding the run saw goes to the statistics, each one
        it did not see is deleted (DynamoDB bills a keys-only query for whole items, so a second
        pass would double the largest read of the run).
        """
        self._current = run
        run_date = f"{run.started_at.astimezone(UTC):%Y-%m-%d}"
        now = self._clock()

        def seen_by_run(entity: Entity) -> set[str]:
            return set(
                self._archive.iter_archived_ids(entity, run_id=run.run_id, run_date=run_date)
            )

        seen_assets = seen_by_run("assets")
        vanished_assets = [i for i in self._state.iter_ids("assets") if i not in seen_assets]
        seen_findings = seen_by_run("vulnerabilities")
        statistics = SnapshotAggregator(now=now, run_id=run.run_id)
        vanished_findings: list[str] = []
        for finding in self._state.iter_vulnerabilities():
            if finding.id in seen_findings:
                statistics.add_vulnerability(finding)
            else:
                vanished_findings.append(finding.id)
        if vanished_assets:
            self._state.delete("assets", vanished_assets)
        if vanished_findings:
            self._state.delete("vulnerabilities", vanished_findings)
        deleted = len(vanished_assets) + len(vanished_findings)
        self._done = self._done.plus(deleted=deleted)
        for remediation in self._state.iter_remediations_since(now - _STATS_WINDOW):
            statistics.add_remediation(remediation)
        self._snapshots.put_snapshot(
            statistics.result(),
            run_id=run.run_id,
            computed_at=now,
            with_deactivated=statistics.result(include_deactivated=True),
        )
        # The run ends once its snapshot is stored: finishedAt is that moment, not the
        # snapshot's computedAt (taken before the deletions and the statistics pass).
        ended = self._clock()
        finished = replace(
            run,
            status=RunStatus.SUCCEEDED,
            finished_at=ended,
            updated_at=ended,
            checkpoint=Checkpoint(Phase.DONE),
            counts=run.counts.plus(deleted=deleted),
        )
        self._runs.put_run(finished)
        self._runs.set_last_complete(
            LastComplete(
                run.run_id,
                run.started_at,
                ended,
                remediations_retry_from=self._retry_from(run, run_date),
            )
        )
        self._runs.release_lock(run.run_id)
        self._metrics.add("SyncSuccess", 1.0)
        _LOG.info("run complete", extra={"run_id": run.run_id, **finished.counts.to_dict()})
        self._current = finished
        return finished

    def _retry_from(self, run: RunRecord, run_date: str) -> datetime | None:
        """The window the next run must re-list from when this one quarantined remediations."""
        if not self._archive.has_quarantine("remediations", run_id=run.run_id, run_date=run_date):
            return None
        return self._remediation_window() or _EVERYTHING

    # ------------------------------------------------------------------ endings

    def _lease(self) -> int:
        """Seconds of lease: to this invocation's deadline plus the margin, within the ceiling."""
        to_deadline = math.ceil(self._remaining() + self._config.lease_margin_seconds)
        return max(1, min(self._config.lock_lease_seconds, to_deadline))

    def _out_of_time(self) -> bool:
        return self._remaining() < self._config.time_margin_seconds

    def _hand_over(self, run: RunRecord) -> RunOutcome:
        if run.continuations >= self._config.max_continuations:
            return self._fail(run, f"gave up after {run.continuations} continuations")
        run = replace(run, continuations=run.continuations + 1, updated_at=self._clock())
        self._runs.put_run(run)
        self._start_continuation(run.run_id, run.continuations)
        _LOG.info(
            "run continues in a new invocation",
            extra={
                "run_id": run.run_id,
                "sequence": run.continuations,
                "checkpoint": run.checkpoint.to_dict(),
            },
        )
        return RunOutcome(
            InvocationStatus.CONTINUING,
            run.run_id,
            f"continuing at {run.checkpoint.phase} page {run.checkpoint.page_number}",
            counts=self._done,
            run_counts=run.counts,
        )

    def _fail(self, run: RunRecord, error: str) -> RunOutcome:
        now = self._clock()
        failed = replace(run, status=RunStatus.FAILED, error=error, updated_at=now)
        self._runs.put_run(failed)
        self._runs.release_lock(run.run_id)
        self._metrics.add("SyncFailure", 1.0)
        _LOG.error(
            "run failed; the next start resumes it from its checkpoint",
            extra={"run_id": run.run_id, "error": error, "checkpoint": run.checkpoint.to_dict()},
        )
        return RunOutcome(
            InvocationStatus.FAILED, run.run_id, error, counts=self._done, run_counts=run.counts
        )

    def _retries_so_far(self) -> int:
        """Upstream requests this invocation made beyond one per page and one per token."""
        stats = self._client.stats
        return max(0, stats.requests - stats.pages - stats.tokens_minted)

    def _emit_metrics(self) -> None:
        # Retries after the last stored page (a failed or handed-over page) count too.
        done = self._done.to_dict() | {"retries": self._retries_so_far()}
        for name, metric in _METRIC_OF_COUNT.items():
            self._metrics.add(metric, float(done[name]))


def _next_phase(phase: Phase) -> Phase:
    order = (*_LISTINGS, Phase.FINALIZE, Phase.DONE)
    return order[order.index(phase) + 1]


def _validate(
    records: Sequence[Any], prepare: Callable[[Mapping[str, Any]], StateItem]
) -> tuple[list[StateItem], list[dict[str, Any]]]:
    items: list[StateItem] = []
    rejects: list[dict[str, Any]] = []
    for raw in records:
        try:
            items.append(prepare(raw))
        except InvalidRecordError as exc:
            rejects.append({"id": exc.record_id, "reason": exc.reason, "record": raw})
    return items, rejects


def _changed(items: Sequence[StateItem], stored: Mapping[str, str]) -> list[StateItem]:
    """Items whose hash differs from the stored one, each id once (a page may repeat a record)."""
    changed: dict[str, StateItem] = {}
    for item in items:
        if stored.get(item.id) != item.content_hash:
            changed[item.id] = item
    return list(changed.values())
