"""The command line of scripts/performance_test.py: parse, validate, measure, report."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from locate import (
    REPO,
    SAMCONFIG,
    LocateError,
    TargetUnavailableError,
)
from perftest.check import BASELINE, check_table, run_check
from perftest.cloudwatch import fetch_metrics
from perftest.cost import cost_per_million, price_basis
from perftest.errors import Interrupted, PerfTestError, UsageError
from perftest.modes import (
    cold_result,
    concurrent_result,
    run_cold,
    run_concurrent,
    run_warm,
    warm_result,
)
from perftest.reports import SCHEMA_VERSION, terminal_table, write_reports
from perftest.restore import COLD_MARKER, ConfigurationGuard
from perftest.targets import (
    Endpoint,
    Target,
    aws_clients,
    endpoint_for,
    resolve_targets,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


__all__ = ["Progress", "main"]

MODES: Final = ("cold", "warm", "concurrent", "metrics", "sweep", "full", "check")
_MIN_MEMORY, _MAX_MEMORY = 128, 10240


class Progress:
    """Progress lines on stderr, stamped with the seconds since the start."""

    def __init__(self, stream: TextIO = sys.stderr, *, quiet: bool = False) -> None:
        self._stream = stream
        self._quiet = quiet
        self._start = time.monotonic()

    def __call__(self, message: str) -> None:
        if not self._quiet:
            print(
                f"[{time.monotonic() - self._start:7.1f}s] {message}", file=self._stream, flush=True
            )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _memory_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"memory size {part!r} is not a whole number"
            ) from None
        if not _MIN_MEMORY <= size <= _MAX_MEMORY:
            raise argparse.ArgumentTypeError(
                f"memory size {size} MB is outside Lambda's {_MIN_MEMORY}-{_MAX_MEMORY} MB"
            )
        sizes.append(size)
    if len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError("memory sizes repeat")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one positional mode; every option shared by all modes)."""
    parser = argparse.ArgumentParser(
        prog="performance_test.py",
        description="Measure cold and warm starts of Lambda functions, on AWS or the local stage.",
        epilog="Modes: cold (forced cold starts), warm (sequential after a warm-up), concurrent "
        "(parallel callers for a time), metrics (CloudWatch over a window), sweep (cold and warm "
        "per memory size, with cost), full (cold, warm, concurrent and metrics), check (the "
        "regression guard: a private local stage, ApiFunction against the floor handler, "
        "compared with --baseline). Functions whose "
        "configuration changes (cold, sweep, full) get it back at the end, also on Ctrl-C.",
    )
    parser.add_argument("mode", choices=MODES)
    where = parser.add_argument_group(
        "target (one of --stack, --samconfig-env, --local, --endpoint-url, or names)"
    )
    where.add_argument(
        "--function",
        action="append",
        default=[],
        metavar="NAME_OR_ARN",
        help="a function to measure (repeat); with a stack or stage, picks among its functions",
    )
    where.add_argument(
        "--stack", help="CloudFormation stack: measure the functions named in its outputs"
    )
    where.add_argument(
        "--samconfig-env",
        metavar="ENV",
        help="use the stack_name and region of this samconfig.toml environment",
    )
    where.add_argument("--samconfig", type=Path, default=SAMCONFIG, help=argparse.SUPPRESS)
    where.add_argument(
        "--local",
        action="store_true",
        help="the running local stage (its state file), else a private one started for the run",
    )
    where.add_argument(
        "--state-file",
        type=Path,
        help="a running local stage's state file (default: the only one running, or the one "
        "on the default ports)",
    )
    where.add_argument(
        "--endpoint-url", help="a Lambda Invoke API endpoint (e.g. the local stage's)"
    )
    where.add_argument("--cloudwatch-endpoint-url", help="CloudWatch endpoint for the metrics mode")
    where.add_argument("--region", help="AWS region (else the profile's or AWS_REGION)")
    where.add_argument("--profile", help="AWS profile name")
    what = parser.add_argument_group("measurements")
    what.add_argument(
        "--payload",
        action="append",
        default=[],
        metavar="[FUNCTION=]FILE",
        help="an events/ fixture for a function (or all); defaults per function",
    )
    what.add_argument(
        "--allow-sync-runs",
        action="store_true",
        help="allow SyncFunction payloads that start real sync runs",
    )
    what.add_argument(
        "--cold",
        type=_positive_int,
        default=10,
        metavar="N",
        help="forced cold starts per function (10)",
    )
    what.add_argument(
        "--warm",
        type=_positive_int,
        default=50,
        metavar="M",
        help="measured warm invocations per function (50)",
    )
    what.add_argument(
        "--warmup",
        type=_positive_int,
        default=3,
        metavar="W",
        help="unmeasured warm-up invocations (3)",
    )
    what.add_argument(
        "--concurrency", type=_positive_int, default=5, metavar="C", help="parallel callers (5)"
    )
    what.add_argument(
        "--duration",
        type=_positive_float,
        default=10.0,
        metavar="T",
        help="seconds of the concurrent test (10)",
    )
    what.add_argument(
        "--window-minutes",
        type=_positive_int,
        default=60,
        metavar="MIN",
        help="metrics window ending now, UTC (60)",
    )
    what.add_argument(
        "--memory-sizes",
        type=_memory_sizes,
        default=[512, 1024, 1536, 2048],
        metavar="MB,MB,...",
        help="sweep sizes (512,1024,1536,2048)",
    )
    what.add_argument(
        "--findings",
        type=_positive_int,
        default=1000,
        help="data set of a private local stage (1000)",
    )
    guard = parser.add_argument_group("check mode")
    guard.add_argument("--baseline", type=Path, default=BASELINE, help="docs/perf-baseline.json")
    guard.add_argument("--write-baseline", action="store_true", help="record the baseline instead")
    guard.add_argument("--margin", type=_positive_float, help="allowed cold ratio growth (0.25)")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output-dir",
        type=Path,
        default=REPO / "reports",
        help="where the JSON and HTML go (reports/)",
    )
    out.add_argument("--name", help="file name stem of the reports (perf-<mode>-<UTC time>)")
    out.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


# ---------------------------------------------------------------- measuring


def _cost(
    block: dict[str, Any] | None, memory_mb: int, architecture: str, region: str | None
) -> float | None:
    if not block:
        return None
    mean = block["series"]["billed_duration_ms"]["mean"]
    value = cost_per_million(mean, memory_mb, architecture, region)
    return None if value is None else round(value, 4)


def _cloudwatch(args: argparse.Namespace, endpoint: Endpoint, session: Any) -> Any:
    from botocore.config import Config  # noqa: PLC0415

    return session.client(
        "cloudwatch",
        endpoint_url=endpoint.cloudwatch_endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 2}, read_timeout=60),
    )


def _sweep(
    args: argparse.Namespace,
    endpoint: Endpoint,
    targets: list[Target],
    guard: ConfigurationGuard,
    say: Progress,
) -> dict[str, list[dict[str, Any]]]:
    points: dict[str, list[dict[str, Any]]] = {t.label: [] for t in targets}
    for size in args.memory_sizes:
        say(f"sweep: {size} MB")
        colds = run_cold(targets, args.cold, guard, say, memory_mb=size)
        warms = run_warm(targets, args.warm, args.warmup, say)
        for target in targets:
            warm = warm_result(warms[target.label], args.warm, args.warmup)
            cost = _cost(warm, size, target.config.architecture, endpoint.region)
            points[target.label].append(
                {
                    "memory_mb": size,
                    "cold": cold_result(colds[target.label], args.cold),
                    "warm": warm,
                    "cost_per_million_usd": cost,
                }
            )
    return points


def measure(
    args: argparse.Namespace, endpoint: Endpoint, targets: list[Target], session: Any, say: Progress
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Run the mode; returns each function's results and the notes of the run."""
    mode = args.mode
    results: dict[str, dict[str, Any]] = {t.label: {} for t in targets}
    notes: list[str] = []
    with ConfigurationGuard(say) as guard:
        if mode in ("cold", "full"):
            say(f"cold: {args.cold} forced cold start(s) per function, functions interleaved")
            for label, calls in run_cold(targets, args.cold, guard, say).items():
                results[label]["cold"] = cold_result(calls, args.cold)
        if mode in ("warm", "full"):
            say(f"warm: {args.warmup} warm-up then {args.warm} measured invocation(s) per function")
            for label, calls in run_warm(targets, args.warm, args.warmup, say).items():
                results[label]["warm"] = warm_result(calls, args.warm, args.warmup)
        if mode in ("concurrent", "full"):
            for target in targets:
                calls, elapsed = run_concurrent(target, args.concurrency, args.duration, say)
                results[target.label]["concurrent"] = concurrent_result(
                    calls, args.concurrency, args.duration, elapsed
                )
        if mode == "sweep":
            for label, sweep in _sweep(args, endpoint, targets, guard, say).items():
                results[label]["sweep"] = sweep
        changed = guard.changed
    if changed:
        notes.append(
            f"cold starts were forced by changing the environment variable {COLD_MARKER} and "
            "waiting for the function_updated waiter; the original environment and memory of "
            f"{', '.join(guard.restored)} were restored and checked at the end"
        )
    if mode in ("metrics", "full"):
        cloudwatch = _cloudwatch(args, endpoint, session)
        for target in targets:
            name = target.config.name
            say(f"{target.label}: CloudWatch metrics of the last {args.window_minutes} min")
            results[target.label]["metrics"] = fetch_metrics(
                cloudwatch,
                name,
                args.window_minutes,
                local=endpoint.local,
                qualifier=target.qualifier,
            )
    return results, notes


def _environment() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": None if load is None else [round(x, 2) for x in load],
    }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _function_block(target: Target, found: dict[str, Any], region: str | None) -> dict[str, Any]:
    config = target.config
    return {
        "label": target.label,
        "function": target.function,
        "qualifier": target.qualifier,
        "payload": target.payload.source,
        "configuration": {
            "memory_mb": config.memory_mb,
            "architecture": config.architecture,
            "runtime": config.runtime,
            "timeout_s": config.timeout_s,
            "snap_start": config.snap_start,
        },
        "cold": found.get("cold"),
        "warm": found.get("warm"),
        "concurrent": found.get("concurrent"),
        "metrics": found.get("metrics"),
        "sweep": found.get("sweep"),
        "cost": {
            "cold_per_million_usd": _cost(
                found.get("cold"), config.memory_mb, config.architecture, region
            ),
            "warm_per_million_usd": _cost(
                found.get("warm"), config.memory_mb, config.architecture, region
            ),
        },
    }


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    mode = args.mode
    cold = mode in ("cold", "full", "sweep")
    warm = mode in ("warm", "full", "sweep")
    burst = mode in ("concurrent", "full")
    return {
        "cold_rounds": args.cold if cold else None,
        "warm_invocations": args.warm if warm else None,
        "warmup_invocations": args.warmup if warm else None,
        "concurrency": args.concurrency if burst else None,
        "concurrent_seconds": args.duration if burst else None,
        "metrics_window_minutes": args.window_minutes if mode in ("metrics", "full") else None,
        "memory_sizes_mb": args.memory_sizes if mode == "sweep" else None,
    }


def _standard_notes(endpoint: Endpoint) -> list[str]:
    notes = [
        "series hold only completed invocations of the measured payload; failures, throttles, "
        "warm answers in a cold series and cold answers in a warm series are counted apart and "
        "kept in the samples; warm-up invocations are not measured; no warming ping is ever a "
        "measured payload",
        "cold start = Init Duration (or Restore Duration with SnapStart) + Duration, from the "
        "REPORT line of each invocation (LogType=Tail); round trip is the client's wall time",
        "percentiles interpolate linearly between closest ranks; stdev is the sample deviation",
    ]
    if endpoint.local:
        notes.append(
            "local stage: functions run in awslambdaric worker processes on this machine, from "
            "the source folders; Init Duration runs from the worker's spawn to its first request, "
            "and Billed Duration is the handler's Duration rounded up (no init billed)"
        )
    basis = price_basis()
    if basis is not None:
        notes.append(
            "cost per million = requests + mean Billed Duration x memory at the us-east-1 list "
            f"prices of scripts/ops/aws_prices.py ({basis['source']}, checked {basis['date']}); "
            "null for a region or architecture the table does not hold; no free tier applied"
        )
    return notes


def run(args: argparse.Namespace, endpoint: Endpoint, say: Progress) -> int:
    """Validate the targets, measure, write the reports and print the table."""
    started = dt.datetime.now(dt.UTC)
    pool = max(10, args.concurrency + 4)
    client, session = aws_clients(endpoint, read_timeout_s=960, pool=pool)
    targets = resolve_targets(args, endpoint, client, session)
    say(f"measuring {', '.join(t.label for t in targets)} ({args.mode})")
    results, notes = measure(args, endpoint, targets, session, say)
    region = endpoint.region or session.region_name
    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": "scripts/performance_test.py",
        "mode": args.mode,
        "started_at": _iso(started),
        "finished_at": _iso(dt.datetime.now(dt.UTC)),
        "target": {**endpoint.describe(), "region": region},
        "settings": _settings(args),
        "environment": _environment(),
        "prices": price_basis(),
        "functions": [_function_block(t, results[t.label], region) for t in targets],
        "notes": _standard_notes(endpoint) + notes,
    }
    stem = args.name or f"perf-{args.mode}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    json_path, html_path = write_reports(report, args.output_dir, stem)
    print(terminal_table(report))
    print(f"\nreports: {json_path}\n         {html_path}")
    return 0


def _check(args: argparse.Namespace, say: Progress) -> int:
    chosen = [
        flag
        for flag, on in (
            ("--stack", args.stack),
            ("--local", args.local),
            ("--endpoint-url", args.endpoint_url),
            ("--function", args.function),
            ("--samconfig-env", args.samconfig_env),
        )
        if on
    ]
    if chosen:
        raise UsageError(f"check always runs on a private local stage; drop {', '.join(chosen)}")
    started = dt.datetime.now(dt.UTC)
    status, result = run_check(
        baseline_path=args.baseline,
        write_baseline=args.write_baseline,
        margin=args.margin,
        rounds=args.cold,
        count=args.warm,
        warmup=args.warmup,
        findings=args.findings,
        say=say,
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"perf-check-{started.strftime('%Y%m%dT%H%M%SZ')}"
    path = args.output_dir / f"{stem}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(check_table(result))
    print(f"\nresult: {path}")
    return status


def main(argv: Sequence[str] | None = None, *, stderr: TextIO = sys.stderr) -> int:
    """Entry point; returns the exit status (2 bad usage, 1 failure, 130/143 interrupted)."""
    args = build_parser().parse_args(argv)
    say = Progress(stderr, quiet=args.quiet)
    try:
        if args.mode == "check":
            return _check(args, say)
        with endpoint_for(args, say) as endpoint:
            return run(args, endpoint, say)
    except (UsageError, LocateError) as error:
        print(f"performance_test: {error}", file=stderr)
        # A target named right but unusable (access denied, a failed first sync) is a failure.
        return 1 if isinstance(error, TargetUnavailableError) else 2
    except PerfTestError as error:
        print(f"performance_test: {error}", file=stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "performance_test: interrupted; every changed configuration was restored", file=stderr
        )
        return 130
    except Interrupted as signal_name:
        print(
            f"performance_test: stopped by {signal_name}; every changed configuration was restored",
            file=stderr,
        )
        return 143
