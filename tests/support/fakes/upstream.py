"""A scripted Upstream: pages of given raw records, with faults at chosen pages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vulnstats.vanta import ClientStats, Page

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from vulnstats.models import Entity


@dataclass
class FakeUpstream:
    """Serves ``records[entity]`` in pages of ``page_size``; cursors are record offsets.

    ``faults[(entity, page_number)]`` is an exception raised (once) instead of that page.
    ``retries_per_page`` makes each page cost that many extra requests, as retries do.
    """

    records: dict[Entity, list[Any]]
    page_size: int = 10
    faults: dict[tuple[Entity, int], BaseException] = field(default_factory=dict)
    retries_per_page: int = 0  # extra requests each page cost, as retries would
    remediated_after_seen: list[datetime | None] = field(default_factory=list)
    _stats: ClientStats = field(default_factory=ClientStats)

    @property
    def stats(self) -> ClientStats:
        return self._stats

    def iter_assets(
        self,
        start_cursor: str | None = None,
        *,
        page_size: int | None = None,
        first_page_number: int = 1,
    ) -> Iterator[Page]:
        return self._pages("assets", start_cursor, first_page_number)

    def iter_vulnerabilities(
        self,
        start_cursor: str | None = None,
        *,
        page_size: int | None = None,
        first_page_number: int = 1,
    ) -> Iterator[Page]:
        return self._pages("vulnerabilities", start_cursor, first_page_number)

    def iter_remediations(
        self,
        remediated_after: datetime | None,
        start_cursor: str | None = None,
        *,
        page_size: int | None = None,
        first_page_number: int = 1,
    ) -> Iterator[Page]:
        self.remediated_after_seen.append(remediated_after)
        return self._pages("remediations", start_cursor, first_page_number)

    def _pages(self, entity: Entity, cursor: str | None, number: int) -> Iterator[Page]:
        data: Sequence[Any] = self.records.get(entity, [])
        offset = int(cursor) if cursor is not None else 0
        while offset < len(data) or (offset == 0 and not data):
            fault = self.faults.pop((entity, number), None)
            if fault is not None:
                raise fault
            chunk = list(data[offset : offset + self.page_size])
            end = offset + len(chunk)
            has_next = end < len(data)
            body = {
                "results": {
                    "pageInfo": {
                        "endCursor": str(end) if chunk else None,
                        "hasNextPage": has_next,
                        "hasPreviousPage": offset > 0,
                        "startCursor": str(offset),
                    },
                    "data": chunk,
                }
            }
            self._stats.requests += 1 + self.retries_per_page
            self._stats.pages += 1
            page = Page(
                entity=entity,
                number=number,
                cursor=cursor,
                end_cursor=str(end) if chunk else None,
                has_next=has_next,
                page_size=self.page_size,
                records=chunk,
                raw=json.dumps(body).encode(),
            )
            yield page
            if not has_next:
                return
            cursor, offset, number = str(end), end, number + 1
