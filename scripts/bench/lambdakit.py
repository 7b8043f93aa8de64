"""Benchmark lambdakit: import cost per module (python -X importtime) and per-call overheads.

Usage (from the repository root):
    PYTHONPATH=layers/shared:scripts .venv/bin/python -m bench.lambdakit [--repeats 9]

Each import figure is the median, over fresh interpreters, of the summed cumulative
``-X importtime`` microseconds of the top-level imports the statement triggers (interpreter
start-up excluded). References (boto3, Powertools, ...) are measured in the same run. Per-call
overheads come from ``timeit``: best and median per-call time over several repeats.
Writes a Markdown report to stdout. A benchmark, not a test: nothing here fails on a figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import timeit
from typing import Any

from locate import REPO

SHARED = REPO / "layers" / "shared"
MARK = "--lambdakit-bench-mark--"

MODULES = [
    "lambdakit",
    "lambdakit.errors",
    "lambdakit.metrics",
    "lambdakit.lazy",
    "lambdakit.settings",
    "lambdakit.coldstart",
    "lambdakit.warm",
    "lambdakit.clients",
    "lambdakit.retry",
    "lambdakit.breaker",
    "lambdakit.observability",
]
# Statements that trigger a module's lazy dependency: what the first real use costs on top.
FIRST_USE = {
    "lambdakit.clients (first client: botocore)": (
        "import lambdakit.clients as m; m.botocore.session.get_session"
    ),
    "lambdakit.retry (first retry: tenacity)": "import lambdakit.retry as m; m.tenacity.Retrying",
    "lambdakit.breaker (first call: pybreaker)": (
        "import lambdakit.breaker as m; m.pybreaker.CircuitBreaker"
    ),
}
REFERENCES = [
    "json",
    "dataclasses",
    "boto3",
    "botocore.session",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "tenacity",
    "pybreaker",
    "aws_xray_sdk.core",
]


# What every function of this stack imports anyway: the runtime interface client (as on Lambda)
# and Powertools' Logger. The "marginal" column is a module's cost on top of these.
PRELUDE = "import awslambdaric.bootstrap, aws_lambda_powertools.logging"


def _import_cost_us(statement: str, prelude: str = "") -> int:
    """Microseconds of imports triggered by ``statement`` (after ``prelude``), fresh interpreter."""
    code = (
        f"import sys\n{prelude}\n"
        f"sys.stderr.write({MARK!r} + '\\n'); sys.stderr.flush()\n{statement}"
    )
    env = {**os.environ, "PYTHONPATH": str(SHARED)}
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=REPO,
    )
    _, _, after = completed.stderr.partition(MARK)
    total = 0
    for line in after.splitlines():
        if not line.startswith("import time:"):
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        if cumulative.strip() == "cumulative":
            continue
        # Nested imports are indented under their importer; only top-level ones are summed.
        if not name.startswith("  ", 1):
            total += int(cumulative)
    return total


def measure_imports(
    statements: dict[str, str], repeats: int, prelude: str = ""
) -> dict[str, float]:
    """Median import cost in milliseconds per label, after one warm-up run (bytecode cached)."""
    results: dict[str, float] = {}
    for label, statement in statements.items():
        _import_cost_us(statement, prelude)
        samples = [_import_cost_us(statement, prelude) for _ in range(repeats)]
        results[label] = statistics.median(samples) / 1000.0
    return results


def _per_call_us(stmt: Any, repeats: int) -> tuple[float, float]:
    """(best, median) microseconds per call of ``stmt`` over ``repeats`` timeit runs."""
    timer = timeit.Timer(stmt)
    number, _ = timer.autorange()
    number = max(number, 10_000)
    runs = [t / number * 1e6 for t in timer.repeat(repeat=repeats, number=number)]
    return min(runs), statistics.median(runs)


def measure_overheads(repeats: int) -> list[tuple[str, float, float]]:
    """Per-call overhead rows: (what, best us, median us)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

    from lambdakit.breaker import CircuitBreaker  # noqa: PLC0415
    from lambdakit.clients import get_client  # noqa: PLC0415
    from lambdakit.coldstart import ColdStartTracker  # noqa: PLC0415
    from lambdakit.metrics import NullMetricSink  # noqa: PLC0415
    from lambdakit.retry import Deadline, Retrier  # noqa: PLC0415
    from lambdakit.warm import warm_guard  # noqa: PLC0415

    event = {"httpMethod": "GET", "path": "/stats", "headers": {"accept": "application/json"}}

    def handler(event: dict[str, Any], context: Any) -> int:
        return 200

    bare_best, bare_median = _per_call_us(lambda: handler(event, None), repeats)
    guarded = warm_guard(tracker=ColdStartTracker(process_age=lambda: 0.0))(handler)
    guarded_sink = warm_guard(
        metrics=NullMetricSink(), tracker=ColdStartTracker(process_age=lambda: 0.0)
    )(handler)
    guard_best, guard_median = _per_call_us(lambda: guarded(event, None), repeats)
    sink_best, sink_median = _per_call_us(lambda: guarded_sink(event, None), repeats)

    get_client("dynamodb")  # the miss, outside the timing
    hit_best, hit_median = _per_call_us(lambda: get_client("dynamodb"), repeats)

    def ok() -> int:
        return 1

    retrier = Retrier(retryable=lambda exc: True)
    deadline = Deadline.after(3600.0)
    retry_best, retry_median = _per_call_us(lambda: retrier.call_until(deadline, ok), repeats)
    breaker = CircuitBreaker("bench")
    breaker_best, breaker_median = _per_call_us(lambda: breaker.call(ok), repeats)
    ok_best, ok_median = _per_call_us(ok, repeats)

    return [
        ("warm guard, non-ping event, no sink (over bare handler call)",
         guard_best - bare_best, guard_median - bare_median),
        ("warm guard, non-ping event, with metric sink (over bare handler call)",
         sink_best - bare_best, sink_median - bare_median),
        ("client cache hit: get_client('dynamodb')", hit_best, hit_median),
        ("Retrier.call_until, success on first attempt (over bare call)",
         retry_best - ok_best, retry_median - ok_median),
        ("CircuitBreaker.call, closed, success (over bare call)",
         breaker_best - ok_best, breaker_median - ok_median),
    ]  # fmt: skip


def main() -> None:
    """Run the benchmark and print a Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="fresh interpreters per import")
    parser.add_argument("--calls-repeat", type=int, default=7, help="timeit repeats per overhead")
    args = parser.parse_args()
    if importlib.util.find_spec("lambdakit") is None:
        parser.exit(
            2,
            "bench.lambdakit: lambdakit is not importable: run it with "
            "PYTHONPATH=layers/shared:scripts from the repository root\n",
        )

    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; ")
    print(f"import figures: median of {args.repeats} fresh interpreters (ms, cumulative).\n")

    statements = {
        **{m: f"import {m}" for m in MODULES},
        **FIRST_USE,
        **{m: f"import {m}" for m in REFERENCES},
    }
    fresh = measure_imports(statements, args.repeats)
    marginal = measure_imports(statements, args.repeats, PRELUDE)
    boto3_ms = fresh["boto3"]
    powertools_ms = fresh["aws_lambda_powertools.logging"]

    print(f"marginal: after `{PRELUDE}` in the same interpreter.\n")
    print(
        "| import | fresh ms | marginal ms | fresh vs `import boto3` "
        "| fresh vs `import aws_lambda_powertools.logging` |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, ms in fresh.items():
        print(
            f"| `{label}` | {ms:.2f} | {marginal[label]:.2f} | {ms / boto3_ms:.3f} "
            f"| {ms / powertools_ms:.3f} |"
        )

    print(f"\nper-call overhead: timeit, best and median of {args.calls_repeat} repeats (us).\n")
    print("| operation | best us | median us |")
    print("|---|---:|---:|")
    for label, best, median in measure_overheads(args.calls_repeat):
        print(f"| {label} | {best:.3f} | {median:.3f} |")


if __name__ == "__main__":
    main()
