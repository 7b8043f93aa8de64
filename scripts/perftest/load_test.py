"""Bounded load run against the local stage's API front: errors by kind, latency per route."""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol
from urllib.parse import urlsplit

from locate import LocateError, local_stage

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from localstage.stage import StageConfig
    from locate import StageInfo

__all__ = [
    "LoadResult",
    "LoadTestError",
    "Plan",
    "Route",
    "RouteStats",
    "Sample",
    "classify",
    "percentile",
    "render",
    "run_load",
    "summarise",
]

# The template gives ApiFunction no reserved concurrency; 5 is the provisioned concurrency the
# stack keeps warm in business hours (ProvisionedConcurrencyBusinessHours), i.e. the load one
# stage is sized to serve without cold starts. See docs/performance.md.
DEFAULT_CONCURRENCY: Final = 5
DEFAULT_MAX_REQUESTS: Final = 2000
DEFAULT_MAX_SECONDS: Final = 60.0
REQUEST_TIMEOUT_S: Final = 30.0  # above API Gateway's 29 s integration timeout
REFERENCE_ROUTE: Final = "GET /health"
# Answers a client may get under load without anything being wrong: API Gateway's throttle.
DOCUMENTED_THROTTLE: Final = 429

Kind = Literal["ok", "throttled", "unexpected"]


class LoadTestError(Exception):
    """The run cannot start (bad target, no data); the message says what to change."""


@dataclass(frozen=True, slots=True)
class Route:
    """One request the run sends: a name for the report and a path with its query."""

    name: str
    path: str
    authenticated: bool = True


@dataclass(frozen=True, slots=True)
class Sample:
    """One request's outcome: HTTP status (None when no answer came) and latency."""

    route: str
    status: int | None
    latency_s: float
    error: str | None = None

    @property
    def kind(self) -> Kind:
        """ok, a documented throttle, or unexpected."""
        return classify(self.status, self.error)


def classify(status: int | None, error: str | None) -> Kind:
    """2xx and 304 are ok, 429 is the documented throttle; anything else (or no answer) is not."""
    if error is not None or status is None:
        return "unexpected"
    if status == DOCUMENTED_THROTTLE:
        return "throttled"
    if 200 <= status < 300 or status == 304:
        return "ok"
    return "unexpected"


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (fraction in (0, 1])."""
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected (0, 1], got {fraction}")
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))  # round: 0.9 * 10 is 9.000...02
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class RouteStats:
    """Counts and latency percentiles (ms) of one route; percentiles over answered requests."""

    route: str
    requests: int
    ok: int
    throttled: int
    unexpected: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: Mapping[str, int] = field(default_factory=dict)


def summarise(samples: Sequence[Sample]) -> dict[str, RouteStats]:
    """Per-route statistics, routes in first-seen order."""
    by_route: dict[str, list[Sample]] = {}
    for sample in samples:
        by_route.setdefault(sample.route, []).append(sample)
    stats: dict[str, RouteStats] = {}
    for route, group in by_route.items():
        answered = sorted(s.latency_s * 1000 for s in group if s.status is not None)
        errors: dict[str, int] = {}
        for s in group:
            if s.kind == "unexpected":
                key = s.error or f"HTTP {s.status}"
                errors[key] = errors.get(key, 0) + 1

        def pick(fraction: float, values: list[float] = answered) -> float:
            return percentile(values, fraction) if values else float("nan")

        stats[route] = RouteStats(
            route=route,
            requests=len(group),
            ok=sum(1 for s in group if s.kind == "ok"),
            throttled=sum(1 for s in group if s.kind == "throttled"),
            unexpected=sum(1 for s in group if s.kind == "unexpected"),
            p50_ms=pick(0.50),
            p90_ms=pick(0.90),
            p99_ms=pick(0.99),
            max_ms=answered[-1] if answered else float("nan"),
            errors=errors,
        )
    return stats


# ------------------------------------------------------------------ the run
class Sender(Protocol):
    """Sends one request and returns (status, error); error is None when an answer came."""

    def __call__(self, route: Route) -> tuple[int | None, str | None]:
        """One request."""
        ...


@dataclass(frozen=True, slots=True)
class Plan:
    """What to send, how many at once, and the two bounds that stop the run."""

    routes: Sequence[Route]
    concurrency: int = DEFAULT_CONCURRENCY
    max_requests: int = DEFAULT_MAX_REQUESTS
    max_seconds: float = DEFAULT_MAX_SECONDS

    def __post_init__(self) -> None:
        if not self.routes:
            raise LoadTestError("no routes to send")
        if self.concurrency < 1:
            raise LoadTestError(f"--concurrency: expected at least 1, got {self.concurrency}")
        if self.max_requests < 1:
            raise LoadTestError(f"--requests: expected at least 1, got {self.max_requests}")
        if self.max_seconds <= 0:
            raise LoadTestError(f"--seconds: expected more than 0, got {self.max_seconds}")


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Every measured sample, the wall time, and which bound stopped the run."""

    samples: list[Sample]
    elapsed_s: float
    stopped_by: Literal["requests", "time"]
    concurrency: int
    routes: tuple[str, ...] = ()  # the plan's route names, in plan order (the report's order)

    @property
    def unexpected(self) -> int:
        """Requests that got neither an ok answer nor a documented throttle."""
        return sum(1 for s in self.samples if s.kind == "unexpected")


def run_load(
    plan: Plan, send: Sender, *, clock: Callable[[], float] = time.perf_counter
) -> LoadResult:
    """Send plan.routes round-robin from plan.concurrency threads until a bound is reached.

    No new request starts once max_requests were started or max_seconds have passed; requests
    in flight finish (each is bounded by the sender's timeout).
    """
    samples: list[Sample] = []
    lock = threading.Lock()
    started = clock()
    deadline = started + plan.max_seconds
    issued = 0

    def next_route() -> Route | None:
        nonlocal issued
        with lock:
            if issued >= plan.max_requests or clock() >= deadline:
                return None
            route = plan.routes[issued % len(plan.routes)]
            issued += 1
            return route

    def worker() -> None:
        while (route := next_route()) is not None:
            begin = clock()
            status, error = send(route)
            sample = Sample(route.name, status, clock() - begin, error)
            with lock:
                samples.append(sample)

    threads = [
        threading.Thread(target=worker, name=f"load-{n}", daemon=True)
        for n in range(plan.concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = clock() - started
    return LoadResult(
        samples=samples,
        elapsed_s=elapsed,
        stopped_by="requests" if issued >= plan.max_requests else "time",
        concurrency=plan.concurrency,
        routes=tuple(dict.fromkeys(route.name for route in plan.routes)),
    )


def render(result: LoadResult, reference: str = REFERENCE_ROUTE) -> str:
    """A Markdown table per route, with p50 and p99 as ratios to the reference route's."""
    measured = summarise(result.samples)
    order = [name for name in result.routes if name in measured]
    stats = {name: measured[name] for name in [*order, *(n for n in measured if n not in order)]}
    ref = stats.get(reference)
    lines = [
        "| route | requests | ok | 429 | unexpected | p50 ms | p90 ms | p99 ms | max ms "
        "| p50 / ref | p99 / ref |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in stats.values():
        r50 = s.p50_ms / ref.p50_ms if ref and ref.p50_ms else float("nan")
        r99 = s.p99_ms / ref.p99_ms if ref and ref.p99_ms else float("nan")
        lines.append(
            f"| `{s.route}` | {s.requests} | {s.ok} | {s.throttled} | {s.unexpected} "
            f"| {s.p50_ms:.1f} | {s.p90_ms:.1f} | {s.p99_ms:.1f} | {s.max_ms:.1f} "
            f"| {r50:.2f} | {r99:.2f} |"
        )
    total = len(result.samples)
    rate = total / result.elapsed_s if result.elapsed_s else 0.0
    throttled = sum(s.throttled for s in stats.values())
    lines += [
        "",
        f"{total} requests at concurrency {result.concurrency} in {result.elapsed_s:.1f} s "
        f"({rate:.0f}/s, stopped by the {result.stopped_by} bound); documented throttles (429): "
        f"{throttled}; unexpected: {result.unexpected}. Reference: `{reference}`.",
    ]
    for s in stats.values():
        for error, count in s.errors.items():
            lines.append(f"- unexpected on `{s.route}`: {error} x{count}")
    return "\n".join(lines)


# ------------------------------------------------------------------ HTTP and the stage
def require_loopback(url: str) -> str:
    """The base URL, or LoadTestError unless it points at this machine's loopback."""
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LoadTestError(f"{url}: the load run only targets a local stage on loopback")
    return url.rstrip("/")


class HttpSender:
    """Sender over requests, one session per thread, the API key on authenticated routes."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = REQUEST_TIMEOUT_S):
        import requests  # noqa: PLC0415

        self._requests = requests
        self._base = require_loopback(base_url)
        self._key = api_key
        self._timeout = timeout_s
        self._local = threading.local()

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._requests.Session()
        return session

    def get(self, path: str) -> Any:
        """One GET with the API key (used to discover ids before the run)."""
        return self._session().get(
            self._base + path, headers={"x-api-key": self._key}, timeout=self._timeout
        )

    def __call__(self, route: Route) -> tuple[int | None, str | None]:
        """Send the route; connection errors and timeouts come back as an error name."""
        headers = {"x-api-key": self._key} if route.authenticated else {}
        try:
            response = self._session().get(
                self._base + route.path, headers=headers, timeout=self._timeout
            )
        except self._requests.RequestException as exc:
            return None, type(exc).__name__
        response.content  # noqa: B018 - read the whole body: latency includes the transfer
        return response.status_code, None


def discover_routes(sender: HttpSender) -> list[Route]:
    """Every read route of the API; the two by-id routes use an id that exists.

    `POST /sync` is left out: under load it would start runs (or be refused), which measures
    the sync lock, not the API.
    """
    listing = sender.get("/vulnerabilities?limit=1")
    runs = sender.get("/sync/runs?limit=1")
    if listing.status_code != 200 or runs.status_code != 200:
        raise LoadTestError(
            f"the stage does not answer the API (GET /vulnerabilities {listing.status_code}, "
            f"GET /sync/runs {runs.status_code}): is the API key right?"
        )
    items, run_items = listing.json()["items"], runs.json()["runs"]
    if not items or not run_items:
        raise LoadTestError("the stage holds no data: run a sync first (make local does)")
    vulnerability, run = items[0]["id"], run_items[0]["runId"]
    return [
        Route(REFERENCE_ROUTE, "/health", authenticated=False),
        Route("GET /stats", "/stats"),
        Route("GET /stats/history", "/stats/history?days=30"),
        Route("GET /vulnerabilities", "/vulnerabilities?limit=50"),
        Route("GET /vulnerabilities?severity", "/vulnerabilities?severity=CRITICAL&limit=50"),
        Route("GET /vulnerabilities/{id}", f"/vulnerabilities/{vulnerability}"),
        Route("GET /sync/runs", "/sync/runs?limit=10"),
        Route("GET /sync/runs/{id}", f"/sync/runs/{run}"),
    ]


def warm_up(sender: Sender, concurrency: int) -> None:
    """Two rounds of concurrent /health calls so that cold starts stay out of the figures."""
    plan = Plan(
        [Route(REFERENCE_ROUTE, "/health", authenticated=False)],
        concurrency=concurrency,
        max_requests=2 * concurrency,
        max_seconds=120.0,
    )
    run_load(plan, sender)


def _private_config(vulnerabilities: int) -> StageConfig:
    from localstage.stage import StageConfig  # noqa: PLC0415 - heavy, only for a private stage
    from localstage.vanta_data import Dataset  # noqa: PLC0415

    return StageConfig.ephemeral(
        stack_name="vulnstats-load",
        dataset=Dataset(seed=7, vulnerability_count=vulnerabilities, now=datetime.now(UTC)),
    )


def _describe(stage: StageInfo, vulnerabilities: int) -> str:
    if stage.private:
        return f"private stage ({vulnerabilities} findings)"
    return f"running stage ({stage.source})"


def _run(args: argparse.Namespace, stage: StageInfo) -> int:
    sender = HttpSender(stage.api_url, stage.api_key)
    routes = discover_routes(sender)
    plan = Plan(routes, args.concurrency, args.requests, args.seconds)
    description = _describe(stage, args.vulnerabilities)
    print(f"load run on the {description} at {stage.api_url}", file=sys.stderr)
    warm_up(sender, plan.concurrency)
    result = run_load(plan, sender)
    print(render(result))
    if args.json:
        summary = {name: vars_of(s) for name, s in summarise(result.samples).items()}
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if result.unexpected:
        print(f"FAIL: {result.unexpected} unexpected answers", file=sys.stderr)
        return 1
    return 0


def vars_of(stats: RouteStats) -> dict[str, Any]:
    """RouteStats as a JSON-ready dict."""
    return {name: getattr(stats, name) for name in RouteStats.__slots__}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m perftest.load_test`: exit 0 when no answer was unexpected, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="load_test", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--requests", type=int, default=DEFAULT_MAX_REQUESTS, help="upper bound")
    parser.add_argument("--seconds", type=float, default=DEFAULT_MAX_SECONDS, help="upper bound")
    parser.add_argument(
        "--state-file",
        type=Path,
        help="a running stage's state file (default: the only one running, or the one on the "
        "default ports)",
    )
    parser.add_argument(
        "--private", action="store_true", help="start a private stage even if one runs"
    )
    parser.add_argument("--vulnerabilities", type=int, default=2000, help="private stage data")
    parser.add_argument("--json", help="also write the per-route figures to this file")
    args = parser.parse_args(argv)
    try:
        with local_stage(
            args.state_file,
            lambda: _private_config(args.vulnerabilities),
            sync_reason="load test",
            use_running=not args.private,
        ) as stage:
            return _run(args, stage)
    except (LoadTestError, LocateError) as exc:
        print(f"load test: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
