"""In-memory StateStore, RunStore, SnapshotStore and Archive that count what they write."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vulnstats.models import Asset, Remediation, Vulnerability
from vulnstats.ports import RunInProgressError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from datetime import datetime

    from vulnstats.models import Entity
    from vulnstats.ports import LastComplete, RunRecord, StateItem


class MemoryState:
    """StateStore in dicts; ``writes`` counts item writes per (entity, id)."""

    def __init__(self) -> None:
        self.items: dict[Entity, dict[str, StateItem]] = {
            "assets": {},
            "vulnerabilities": {},
            "remediations": {},
        }
        self.writes: Counter[tuple[str, str]] = Counter()
        self.deletes: Counter[tuple[str, str]] = Counter()

    def stored_hashes(self, entity: Entity, ids: Sequence[str]) -> dict[str, str]:
        table = self.items[entity]
        return {i: table[i].content_hash for i in ids if i in table}

    def write(self, entity: Entity, items: Sequence[StateItem]) -> None:
        for item in items:
            self.items[entity][item.id] = item
            self.writes[(entity, item.id)] += 1

    def iter_ids(self, entity: Entity) -> Iterator[str]:
        yield from sorted(self.items[entity])

    def delete(self, entity: Entity, ids: Sequence[str]) -> None:
        for i in ids:
            self.items[entity].pop(i, None)
            self.deletes[(entity, i)] += 1

    def asset_types(self) -> dict[str, str]:
        return {
            i: item.record.asset_type.value
            for i, item in self.items["assets"].items()
            if isinstance(item.record, Asset)
        }

    def iter_vulnerabilities(self) -> Iterator[Vulnerability]:
        for item in self.items["vulnerabilities"].values():
            assert isinstance(item.record, Vulnerability)
            yield item.record

    def iter_remediations_since(self, since: datetime) -> Iterator[Remediation]:
        for item in self.items["remediations"].values():
            record = item.record
            assert isinstance(record, Remediation)
            if record.remediation_date is not None and record.remediation_date >= since:
                yield record

    def ids(self, entity: Entity) -> set[str]:
        return set(self.items[entity])


@dataclass
class Lock:
    run_id: str
    lease_until: datetime


class MemoryRuns:
    """RunStore in dicts, with the lock's conditional semantics."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.lock: Lock | None = None
        self.next: Lock | None = None
        self.next_reason = ""
        self.last: LastComplete | None = None
        self.puts = 0

    def put_run(self, run: RunRecord) -> None:
        self.runs[run.run_id] = run
        self.puts += 1

    def get_run(self, run_id: str) -> RunRecord | None:
        return self.runs.get(run_id)

    def latest_runs(self, limit: int) -> list[RunRecord]:
        return [self.runs[k] for k in sorted(self.runs, reverse=True)[:limit]]

    def acquire_lock(
        self, run_id: str, now: datetime, lease_seconds: int, *, renew: bool = False
    ) -> None:
        from datetime import timedelta

        held = self.lock
        if held is not None and held.lease_until >= now and not (renew and held.run_id == run_id):
            raise RunInProgressError(held.run_id, held.lease_until)
        self.lock = Lock(run_id, now + timedelta(seconds=lease_seconds))

    def release_lock(self, run_id: str) -> None:
        if self.lock is not None and self.lock.run_id == run_id:
            self.lock = None

    def claim_next(self, run_id: str, now: datetime, lease_seconds: int, reason: str = "") -> str:
        from datetime import timedelta

        held = self.next
        if held is None or held.lease_until < now or held.run_id == run_id:
            self.next = Lock(run_id, now + timedelta(seconds=lease_seconds))
            self.next_reason = reason
            return run_id
        return held.run_id

    def next_request(self, now: datetime) -> tuple[str, str] | None:
        named = self.next_run(now)
        return None if named is None else (named, self.next_reason)

    def next_run(self, now: datetime) -> str | None:
        held = self.next
        return None if held is None or held.lease_until < now else held.run_id

    def clear_next(self, run_id: str) -> None:
        if self.next is not None and self.next.run_id == run_id:
            self.next = None

    def last_complete(self) -> LastComplete | None:
        return self.last

    def set_last_complete(self, last: LastComplete) -> None:
        self.last = last


@dataclass
class MemorySnapshots:
    """SnapshotStore keeping every snapshot put."""

    latest: dict[str, Any] | None = None
    latest_with_deactivated: dict[str, Any] | None = None
    days: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put_snapshot(
        self,
        snapshot: Mapping[str, Any],
        *,
        run_id: str,
        computed_at: datetime,
        with_deactivated: Mapping[str, Any] | None = None,
    ) -> None:
        self.latest = dict(snapshot)
        self.latest_with_deactivated = None if with_deactivated is None else dict(with_deactivated)
        self.days[f"{computed_at:%Y-%m-%d}"] = dict(snapshot)


class MemoryArchive:
    """Archive keeping raw page bodies and quarantined records by key."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.quarantine: dict[str, list[dict[str, Any]]] = {}

    def put_page(
        self, entity: Entity, *, run_id: str, run_date: str, number: int, body: bytes
    ) -> str:
        key = f"raw/{entity}/dt={run_date}/run={run_id}/page-{number}.json.gz"
        self.pages[key] = body
        return key

    def put_quarantine(
        self,
        entity: Entity,
        *,
        run_id: str,
        run_date: str,
        number: int,
        rejects: Sequence[Mapping[str, Any]],
    ) -> str:
        key = f"quarantine/{entity}/dt={run_date}/run={run_id}/page-{number}.json"
        self.quarantine[key] = [dict(r) for r in rejects]
        return key

    def has_quarantine(self, entity: Entity, *, run_id: str, run_date: str) -> bool:
        prefix = f"quarantine/{entity}/dt={run_date}/run={run_id}/"
        return any(key.startswith(prefix) for key in self.quarantine)

    def iter_archived_ids(self, entity: Entity, *, run_id: str, run_date: str) -> Iterator[str]:
        prefix = f"raw/{entity}/dt={run_date}/run={run_id}/"
        for key, body in self.pages.items():
            if key.startswith(prefix):
                for record in json.loads(body)["results"]["data"]:
                    if isinstance(record, dict) and isinstance(record.get("id"), str):
                        yield record["id"]
