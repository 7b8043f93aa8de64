"""The API's routes on a Powertools REST resolver, built from settings and a read store."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from api_fn.errors import (
    ApiError,
    BadRequestError,
    NotFoundError,
    UnavailableError,
)
from api_fn.params import (
    HISTORY_PARAMETERS,
    STATS_PARAMETERS,
    check_known,
    parse_finding_listing,
    parse_history_days,
    parse_include_deactivated,
    parse_runs_limit,
    parse_sync_reason,
)
from vulnstats.errors import StorageError
from vulnstats.ports import resumable_run
from vulnstats.queries import InvalidCursorError, run_view

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from api_fn.settings import ApiSettings
    from vulnstats.queries import ReadStore

__all__ = [
    "NO_SYNC_MESSAGE",
    "NO_VARIANT_MESSAGE",
    "ROUTES",
    "allowed_methods",
    "create_app",
    "prime",
]

# Every route: method, path in the OpenAPI document's syntax, and the _Api method serving it.
# create_app registers exactly these, and docs/openapi.yaml must document exactly these.
_ROUTE_TABLE: Final = (
    ("GET", "/health", "health"),
    ("GET", "/health/ready", "ready"),
    ("GET", "/stats", "stats"),
    ("GET", "/stats/history", "stats_history"),
    ("GET", "/vulnerabilities", "list_vulnerabilities"),
    ("GET", "/vulnerabilities/{id}", "get_vulnerability"),
    ("GET", "/sync/runs", "list_runs"),
    ("GET", "/sync/runs/{id}", "get_run"),
    ("POST", "/sync", "start_sync"),
)
ROUTES: Final = tuple((method, path) for method, path, _ in _ROUTE_TABLE)
NO_SYNC_MESSAGE: Final = (
    "no sync has completed yet; statistics appear after the first successful run"
)
NO_VARIANT_MESSAGE: Final = (
    "the latest snapshot was stored before includeDeactivated existed; the next sync run "
    "stores one that includes deactivated findings"
)
# Which stored snapshot a request reads (see vulnstats.items.snapshot_from_item).
_VARIANT: Final = {False: "snapshot", True: "snapshot_with_deactivated"}
_JSON: Final = "application/json"
_COMPACT: Final = (",", ":")
_LOG: Final = logging.getLogger(__name__)
_ROUTE_PATTERNS: Final = tuple(
    (method, re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "/?$"))
    for method, path in ROUTES
)
# Lambda's runtime prints a standard logger's records as plain text; ours go through Powertools.
type Log = Any

type Starter = Callable[[Mapping[str, Any]], str]
# How long a promised next run stays named without news: longer than any deferral of its message.
NEXT_CLAIM_SECONDS: Final = 3600


class NextRunClaims(Protocol):
    """The next-run slot of the state table (vulnstats.dynamo.DynamoStore is the real one)."""

    def claim_next(
        self, run_id: str, now: datetime, lease_seconds: int, reason: str = ""
    ) -> str: ...
    def next_run(self, now: datetime) -> str | None: ...
    def clear_next(self, run_id: str) -> None: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_run_id(now: datetime) -> str:
    from vulnstats.sync import new_run_id  # noqa: PLC0415 - only POST /sync needs the engine

    return new_run_id(now)


def _json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status,
        content_type=_JSON,
        body=json.dumps(payload, separators=_COMPACT),
        headers=dict(headers or {}),
    )


def _accepted(run_id: str, status: str) -> Response[str]:
    """202 naming the run that will carry the request."""
    links = {"run": f"/sync/runs/{run_id}"}
    return _json_response(202, {"runId": run_id, "status": status, "links": links})


def allowed_methods(path: str) -> list[str]:
    """The methods some route serves at ``path`` (empty: no such path)."""
    return sorted({method for method, pattern in _ROUTE_PATTERNS if pattern.match(path)})


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {candidate.strip().removeprefix("W/") for candidate in header.split(",")}
    return "*" in candidates or etag in candidates


class _Api:
    """The route handlers; ``create_app`` registers them on a resolver."""

    def __init__(
        self,
        app: APIGatewayRestResolver,
        settings: ApiSettings,
        reader: ReadStore,
        *,
        start_sync: Starter | None,
        claims: NextRunClaims | None,
        clock: Callable[[], datetime],
        new_run_id: Callable[[datetime], str],
        logger: Log,
    ) -> None:
        self.app = app
        self.log = logger
        self.settings = settings
        self.reader = reader
        self._starter = start_sync
        self._claims = claims
        self.clock = clock
        self.new_run_id = new_run_id
        ttl = settings.cache_ttl_seconds
        self.cache_control = f"public, max-age={ttl}" if ttl > 0 else "no-cache"

    # ----- helpers -----

    def starter(self) -> Starter:
        if self._starter is None:
            from vulnstats.queue import SyncQueue  # noqa: PLC0415 - POST /sync only

            self._starter = SyncQueue(self.settings.sync_queue_url).send
        return self._starter

    def claims(self) -> NextRunClaims:
        if self._claims is None:
            from vulnstats.dynamo import DynamoStore  # noqa: PLC0415 - POST /sync only

            self._claims = DynamoStore(self.settings.table_name)
        return self._claims

    def query(self) -> Mapping[str, str] | None:
        params: Mapping[str, str] | None = self.app.current_event.query_string_parameters
        return params

    def cached(self, payload: Any) -> Response[str]:
        """200 with Cache-Control and a strong ETag, or 304 when If-None-Match names it."""
        body = json.dumps(payload, separators=_COMPACT, sort_keys=True)
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": self.cache_control}
        current = self.app.current_event.headers.get("If-None-Match")
        if _etag_matches(current, etag):
            return Response(status_code=304, content_type=None, body="", headers=headers)
        return Response(status_code=200, content_type=_JSON, body=body, headers=headers)

    # ----- routes -----

    def health(self) -> Response[str]:
        try:
            last = self.reader.last_complete()
        except StorageError:
            # Still 200: the function is up and says what is wrong (a liveness probe that
            # fails with the table would hide which part is down).
            self.log.exception("health: state table unreadable")
            return _json_response(
                200,
                {
                    "status": "degraded",
                    "version": self.settings.app_version,
                    "stage": self.settings.stage_name,
                    "message": "the state table cannot be read",
                    "lastSuccessfulSync": None,
                    "dataAgeSeconds": None,
                },
                {"Cache-Control": "no-store"},
            )
        payload: dict[str, Any] = {
            "status": "ok",
            "version": self.settings.app_version,
            "stage": self.settings.stage_name,
            "lastSuccessfulSync": None,
            "dataAgeSeconds": None,
        }
        if last is not None:
            finished = last.finished_at.astimezone(UTC)
            payload["lastSuccessfulSync"] = {
                "runId": last.run_id,
                "finishedAt": finished.isoformat().replace("+00:00", "Z"),
            }
            age = (self.clock() - finished).total_seconds()
            payload["dataAgeSeconds"] = max(0, int(age))
        return _json_response(200, payload, {"Cache-Control": "no-store"})

    def ready(self) -> Response[str]:
        from api_fn.readiness import check_readiness  # noqa: PLC0415 - health checkers only

        verdict = check_readiness(
            self.reader,
            self.clock(),
            max_age_seconds=self.settings.readiness_max_data_age_seconds,
            region=self.settings.region,
        )
        if not verdict.ready:
            self.log.warning("not ready", extra={"reason": verdict.body["reason"]})
        status = 200 if verdict.ready else 503
        return _json_response(status, verdict.body, {"Cache-Control": "no-store"})

    def stats(self) -> Response[str]:
        variant = _VARIANT[parse_include_deactivated(self.query(), STATS_PARAMETERS)]
        entry = self.reader.get_snapshot()
        if entry is None:
            raise UnavailableError(NO_SYNC_MESSAGE)
        if entry[variant] is None:
            # Stored by the previous version: the statistics over every finding are not known.
            raise NotFoundError(NO_VARIANT_MESSAGE)
        return self.cached(
            {
                "runId": entry["run_id"],
                "computedAt": entry["computed_at"],
                "snapshot": entry[variant],
            }
        )

    def stats_history(self) -> Response[str]:
        days = parse_history_days(self.query())
        variant = _VARIANT[parse_include_deactivated(self.query(), HISTORY_PARAMETERS)]
        history = self.reader.snapshot_history(days)
        if not history and self.reader.get_snapshot() is None:
            raise UnavailableError(NO_SYNC_MESSAGE)
        # Days stored before includeDeactivated existed have no such snapshot: left out.
        snapshots = [
            {
                "day": entry["day"],
                "runId": entry["run_id"],
                "computedAt": entry["computed_at"],
                "snapshot": entry[variant],
            }
            for entry in history
            if entry[variant] is not None
        ]
        return self.cached({"days": days, "snapshots": snapshots})

    def list_vulnerabilities(self) -> Response[str]:
        listing = parse_finding_listing(self.query())
        try:
            page = self.reader.list_findings(
                listing.filters, limit=listing.limit, cursor=listing.cursor, now=self.clock()
            )
        except InvalidCursorError as exc:
            raise BadRequestError("cursor", exc.reason) from None
        payload = {
            "items": page.items,
            "count": len(page.items),
            "limit": listing.limit,
            "nextCursor": page.next_cursor,
        }
        return _json_response(200, payload)

    def get_vulnerability(self, id: str) -> Response[str]:
        check_known(self.query(), ())
        view = self.reader.get_finding(id, self.clock())
        if view is None:
            raise NotFoundError(f"no vulnerability {id}", id=id)
        return _json_response(200, view)

    def list_runs(self) -> Response[str]:
        limit = parse_runs_limit(self.query())
        runs = self.reader.latest_runs(limit)
        payload = {"runs": [run_view(run) for run in runs], "count": len(runs), "limit": limit}
        return _json_response(200, payload)

    def get_run(self, id: str) -> Response[str]:
        check_known(self.query(), ())
        run = self.reader.get_run(id)
        if run is None:
            raise NotFoundError(f"no sync run {id}", id=id)
        return _json_response(200, run_view(run))

    def start_sync(self) -> Response[str]:
        check_known(self.query(), ())
        try:
            body = self.app.current_event.decoded_body
        except ValueError:  # a base64 body that is not UTF-8 (or not base64): 400, not 500
            raise BadRequestError("body", "must be UTF-8 encoded JSON") from None
        reason = parse_sync_reason(body)
        now = self.clock()
        claims = self.claims()
        holder = self.reader.lock_holder(now)
        # Coalescing, not refusing: every request made while a run is live, or while the next
        # one is queued, is carried by that next run (docs/sync.md). Only the request that
        # names it sends a message; the burst behind it sends nothing.
        queued = claims.next_run(now)
        if queued is not None:
            return _accepted(queued, "queued")
        # The sync carries on the latest run if it failed or was abandoned (no lock holds it
        # any more) instead of starting a new one: promise the id of the run that will go on.
        resumed = None if holder else resumable_run(next(iter(self.reader.latest_runs(1)), None))
        wanted = self.new_run_id(now) if resumed is None else resumed.run_id
        run_id = claims.claim_next(wanted, now, NEXT_CLAIM_SECONDS, reason)
        if run_id != wanted:  # another request named the next run a moment ago
            return _accepted(run_id, "queued")
        from vulnstats.queue import QueueError  # noqa: PLC0415 - POST /sync only
        from vulnstats.triggers import manual_event  # noqa: PLC0415 - POST /sync only

        try:
            self.starter()(manual_event(reason, run_id))
        except QueueError:
            claims.clear_next(run_id)  # nothing will carry it: let the next request try again
            self.log.exception("could not queue the sync request", extra={"run_id": run_id})
            raise UnavailableError("could not queue a sync run; try again later") from None
        return _accepted(run_id, "queued" if holder else "accepted")

    # ----- errors -----

    def api_error(self, exc: ApiError) -> Response[str]:
        return _json_response(exc.status, exc.body())

    def not_found(self, _: Exception) -> Response[str]:
        event = self.app.current_event
        path, method = event.path, event.http_method
        allowed = allowed_methods(path)
        if allowed:
            return _json_response(
                405,
                {"message": f"method {method} not allowed on {path}", "allow": allowed},
                {"Allow": ", ".join(allowed)},
            )
        return _json_response(404, {"message": f"no route {method} {path}"})

    def internal_error(self, exc: Exception) -> Response[str]:
        event = self.app.current_event
        request_id = event.request_context.request_id
        # logger.exception: the traceback goes to the log with the request id, never to the body.
        self.log.exception(
            "unhandled error",
            extra={
                "request_id": request_id,
                "path": event.path,
                "method": event.http_method,
                "error_type": type(exc).__name__,
            },
        )
        return _json_response(500, {"message": "internal error", "requestId": request_id})


def create_app(
    settings: ApiSettings,
    reader: ReadStore,
    *,
    start_sync: Starter | None = None,
    claims: NextRunClaims | None = None,
    clock: Callable[[], datetime] = _utc_now,
    new_run_id: Callable[[datetime], str] = _default_run_id,
    logger: Log | None = None,
) -> APIGatewayRestResolver:
    """A resolver serving every route of ``ROUTES`` over ``reader``.

    ``start_sync`` sends the sync's trigger to the SyncRequests queue (default: a SyncQueue of
    ``SYNC_QUEUE_URL``, whose SQS client is created on the first POST /sync); ``claims`` names
    the next run (default: the state table, its client created on the first POST /sync).
    ``logger`` (the function's Powertools Logger) records errors with the request id.
    """
    app = APIGatewayRestResolver()
    api = _Api(
        app,
        settings,
        reader,
        start_sync=start_sync,
        claims=claims,
        clock=clock,
        new_run_id=new_run_id,
        logger=_LOG if logger is None else logger,
    )
    for method, path, name in _ROUTE_TABLE:
        # Powertools spells a path parameter <name>; OpenAPI and API Gateway {name}.
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        app.route(rule, method)(getattr(api, name))
    app.exception_handler(ApiError)(api.api_error)
    app.not_found(api.not_found)
    app.exception_handler(Exception)(api.internal_error)
    return app


def prime(reader: ReadStore, log: Any = _LOG) -> bool:
    """One read at init so the first request finds an open connection; a failure is only
    logged (the request that follows reports it properly). Returns whether the read worked."""
    try:
        reader.last_complete()
    except StorageError:
        log.warning("priming read failed; the first request will connect")
        return False
    return True
