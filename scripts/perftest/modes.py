"""The measurements: forced cold starts, warm series, a concurrent burst and a memory sweep.

Cold and warm series interleave the functions round by round (the order rotates), so load on
a shared machine falls on every function alike. Only invocations that ran the measured payload
and completed enter a series; failures, throttles, warm answers in a cold series and cold answers
in a warm series are counted apart and kept in the samples.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import TYPE_CHECKING, Any

from perftest.stats import share, summarize

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from perftest.gateway import Invocation
    from perftest.restore import ConfigurationGuard
    from perftest.targets import Target

__all__ = [
    "cold_result",
    "concurrent_result",
    "run_cold",
    "run_concurrent",
    "run_warm",
    "sample",
    "warm_result",
]

type Say = Callable[[str], None]


def _rotated(targets: Sequence[Target], n: int) -> list[Target]:
    k = n % len(targets)
    return [*targets[k:], *targets[:k]]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def sample(invocation: Invocation, index: int) -> dict[str, Any]:
    """One invocation as the report keeps it (REPORT fields, round trip, outcome)."""
    report = invocation.report
    return {
        "index": index,
        "status": invocation.status,
        "cold": None if report is None else report.cold,
        "round_trip_ms": _ms(invocation.round_trip_ms),
        "duration_ms": None if report is None else report.duration_ms,
        "billed_duration_ms": None if report is None else report.billed_duration_ms,
        "init_duration_ms": None if report is None else report.init_duration_ms,
        "restore_duration_ms": None if report is None else report.restore_duration_ms,
        "billed_restore_duration_ms": None if report is None else report.billed_restore_duration_ms,
        "memory_size_mb": None if report is None else report.memory_size_mb,
        "max_memory_used_mb": None if report is None else report.max_memory_used_mb,
        "error": invocation.error,
    }


def _outcomes(invocations: Iterable[Invocation]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for invocation in invocations:
        if not invocation.succeeded:
            counts[invocation.status] = counts.get(invocation.status, 0) + 1
    return counts


def _series(invocations: Sequence[Invocation], *, cold: bool) -> dict[str, Any]:
    reports = [i.report for i in invocations if i.report is not None]
    series: dict[str, Any] = {
        "handler_ms": summarize([r.duration_ms for r in reports]).to_dict(),
        "round_trip_ms": summarize([i.round_trip_ms for i in invocations]).to_dict(),
        "billed_duration_ms": summarize([float(r.billed_duration_ms) for r in reports]).to_dict(),
        "max_memory_used_mb": summarize([float(r.max_memory_used_mb) for r in reports]).to_dict(),
    }
    if cold:
        inits = [r.init_duration_ms for r in reports if r.init_duration_ms is not None]
        restores = [r.restore_duration_ms for r in reports if r.restore_duration_ms is not None]
        series["init_ms"] = summarize(inits).to_dict()
        series["restore_ms"] = summarize(restores).to_dict()
        series["cold_start_ms"] = summarize(
            [r.startup_ms + r.duration_ms for r in reports]
        ).to_dict()
    return series


def cold_result(invocations: Sequence[Invocation], requested: int) -> dict[str, Any]:
    """Summary of a forced cold start series; warm answers are counted, not measured."""
    measured = [i for i in invocations if i.succeeded and i.report is not None and i.report.cold]
    not_cold = [
        i for i in invocations if i.succeeded and i.report is not None and not i.report.cold
    ]
    reports = [i.report for i in measured if i.report is not None]
    startup = sum(r.startup_ms for r in reports)
    handler = sum(r.duration_ms for r in reports)
    return {
        "requested": requested,
        "measured": len(measured),
        "not_cold": len(not_cold),
        "failed": _outcomes(invocations),
        "series": _series(measured, cold=True),
        "split": {
            "init_ms_mean": startup / len(reports) if reports else None,
            "handler_ms_mean": handler / len(reports) if reports else None,
            "init_share": share(round(startup * 1000), round((startup + handler) * 1000)),
        },
        "samples": [sample(i, n) for n, i in enumerate(invocations)],
    }


def warm_result(invocations: Sequence[Invocation], requested: int, warmup: int) -> dict[str, Any]:
    """Summary of a warm series; an answer that needed a new environment is counted apart."""
    measured = [
        i for i in invocations if i.succeeded and i.report is not None and not i.report.cold
    ]
    cold = [i for i in invocations if i.succeeded and i.report is not None and i.report.cold]
    return {
        "requested": requested,
        "warmup": warmup,
        "measured": len(measured),
        "unexpected_cold": len(cold),
        "failed": _outcomes(invocations),
        "series": _series(measured, cold=False),
        "samples": [sample(i, n) for n, i in enumerate(invocations)],
    }


def run_cold(
    targets: Sequence[Target],
    rounds: int,
    guard: ConfigurationGuard,
    say: Say,
    *,
    memory_mb: int | None = None,
) -> dict[str, list[Invocation]]:
    """``rounds`` forced cold starts per target: change the environment, wait, invoke once."""
    results: dict[str, list[Invocation]] = {t.label: [] for t in targets}
    for n in range(rounds):
        for target in _rotated(targets, n):
            guard.force_cold(target.gateway, target.function, memory_mb=memory_mb)
            invocation = target.gateway.invoke(target.function, target.payload.body)
            results[target.label].append(invocation)
            say(f"{target.label}: cold {n + 1}/{rounds} {_describe(invocation)}")
    return results


def run_warm(
    targets: Sequence[Target], count: int, warmup: int, say: Say
) -> dict[str, list[Invocation]]:
    """``warmup`` unrecorded invocations per target, then ``count`` sequential measured ones."""
    for target in targets:
        for _ in range(warmup):
            target.gateway.invoke(target.function, target.payload.body, target.qualifier)
        say(f"{target.label}: warmed up with {warmup} invocation(s), not measured")
    results: dict[str, list[Invocation]] = {t.label: [] for t in targets}
    step = max(1, count // 10)
    for n in range(count):
        for target in _rotated(targets, n):
            invocation = target.gateway.invoke(
                target.function, target.payload.body, target.qualifier
            )
            results[target.label].append(invocation)
            if (n + 1) % step == 0 or n + 1 == count:
                say(f"{target.label}: warm {n + 1}/{count} {_describe(invocation)}")
    return results


def run_concurrent(
    target: Target,
    concurrency: int,
    seconds: float,
    say: Say,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[Invocation], float]:
    """``concurrency`` callers invoking back to back for ``seconds``; returns (calls, elapsed)."""
    stop = threading.Event()
    lock = threading.Lock()
    calls: list[Invocation] = []
    start = clock()
    deadline = start + seconds

    def caller() -> None:
        while not stop.is_set() and clock() < deadline:
            invocation = target.gateway.invoke(
                target.function, target.payload.body, target.qualifier
            )
            with lock:
                calls.append(invocation)

    say(f"{target.label}: {concurrency} concurrent callers for {seconds:g} s")
    pool = concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="perf")
    try:
        futures = [pool.submit(caller) for _ in range(concurrency)]
        pending = set(futures)
        while pending:  # short waits keep the main thread responsive to Ctrl-C
            _, pending = concurrent.futures.wait(pending, timeout=0.25)
        for future in futures:
            future.result()  # a missing function or AccessDenied ends the run
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    elapsed = clock() - start
    say(f"{target.label}: {len(calls)} concurrent invocations in {elapsed:.1f} s")
    return calls, elapsed


def concurrent_result(
    invocations: Sequence[Invocation], concurrency: int, seconds: float, elapsed: float
) -> dict[str, Any]:
    """Summary of the burst: outcomes, cold-start share, throughput and latency series."""
    ok = [i for i in invocations if i.succeeded and i.report is not None]
    cold = [i for i in ok if i.report is not None and i.report.cold]
    warm = [i for i in ok if i.report is not None and not i.report.cold]
    failed = _outcomes(invocations)
    throttled = failed.get("throttled", 0)
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "elapsed_s": round(elapsed, 3),
        "attempted": len(invocations),
        "succeeded": len(ok),
        "cold": len(cold),
        "warm": len(warm),
        "throttled": throttled,
        "errors": sum(v for k, v in failed.items() if k != "throttled"),
        "failed": failed,
        "cold_share": share(len(cold), len(ok)),
        "throughput_per_s": round(len(ok) / elapsed, 3) if elapsed > 0 else None,
        "series": {
            "round_trip_ms": summarize([i.round_trip_ms for i in ok]).to_dict(),
            "handler_ms": summarize(
                [i.report.duration_ms for i in ok if i.report is not None]
            ).to_dict(),
            "cold_start_ms": summarize(
                [i.report.startup_ms + i.report.duration_ms for i in cold if i.report is not None]
            ).to_dict(),
            "warm_round_trip_ms": summarize([i.round_trip_ms for i in warm]).to_dict(),
        },
        "samples": [sample(i, n) for n, i in enumerate(invocations)],
    }


def _describe(invocation: Invocation) -> str:
    report = invocation.report
    if not invocation.succeeded:
        return f"{invocation.status}: {(invocation.error or '')[:120]}"
    if report is None:
        return "no REPORT"
    init = f" init {report.startup_ms:.1f} ms" if report.cold else " (warm)"
    return f"{report.duration_ms:.1f} ms{init}, round trip {invocation.round_trip_ms:.1f} ms"
