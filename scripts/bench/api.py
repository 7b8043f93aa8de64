"""Benchmark ApiFunction against a floor handler and a naive handler, side by side, in one run.

    PYTHONPATH=layers/shared:scripts .venv/bin/python -m bench.api \
        [--findings 3000] [--cold 15] [--warm 300]

One local stage (ports 0, temporary state file) is started and synced once, so the table holds
a real snapshot and real findings. A separate LocalRuntime, behind its own Invoke API, then runs
three functions with the stage's ApiFunction environment and layers: `ours` (the real
ApiFunction), `floor` (boto3, one DynamoDB client, one GetItem) and `naive` (boto3 resource,
Powertools Logger/Metrics/Tracer and the Event Handler at import). Cold starts are forced by an
environment change, interleaved round by round; warm series are interleaved invocation by
invocation. `python -X importtime` attributes the import cost of each handler module.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config

from localstage.aws import DUMMY_CREDENTIALS, aws_environment
from localstage.invoke_api import start_invoke_api
from localstage.runtime import LocalRuntime, ReportLine
from localstage.stage import LocalStage, StageConfig
from localstage.vanta_data import Dataset

if TYPE_CHECKING:
    from localstage.spec import FunctionSpec

REPO: Final = Path(__file__).resolve().parents[2]
EVENTS: Final = REPO / "events"
HANDLERS: Final = Path(__file__).resolve().parent / "handlers"
REGION: Final = "us-east-1"
NAMES: Final = ("ours", "floor", "naive")
HANDLER_MODULES: Final = {
    "ours": "api_fn.handler",
    "floor": "bench_floor_fn.handler",
    "naive": "bench_naive_fn.handler",
}
COLD_TARGET_FLOOR: Final = 1.25
COLD_TARGET_NAIVE: Final = 0.5
WARM_OVERHEAD_TARGET_MS: Final = 0.3


def _event(name: str) -> bytes:
    return json.dumps(json.loads((EVENTS / name).read_text())).encode()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _specs(stage: LocalStage) -> dict[str, FunctionSpec]:
    if stage.stack is None:
        raise RuntimeError("the stage is not running")
    api = stage.stack.functions["ApiFunction"]
    # Same environment for all three; Powertools' tracer is told it is off (TRACING_ENABLED is
    # already "false" on the local stage), so the naive Tracer imports the X-Ray SDK but sends
    # nothing.
    env = {**api.environment, "TRACING_ENABLED": "false", "POWERTOOLS_TRACE_DISABLED": "true"}
    ours = dataclasses.replace(
        api,
        logical_id="ours",
        function_name="ours",
        environment=env,
        routes=(),
        schedules=(),
        reserved_concurrency=None,
    )
    floor = dataclasses.replace(
        ours,
        logical_id="floor",
        function_name="floor",
        code_dir=HANDLERS / "bench_floor",
        handler="bench_floor_fn.handler.handler",
    )
    naive = dataclasses.replace(
        ours,
        logical_id="naive",
        function_name="naive",
        code_dir=HANDLERS / "bench_naive",
        handler="bench_naive_fn.handler.handler",
    )
    return {"ours": ours, "floor": floor, "naive": naive}


def _lambda_client(endpoint_url: str) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=DUMMY_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
        config=Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=120),
    )


def _invoke(client: Any, name: str, payload: bytes) -> tuple[float, ReportLine]:
    start = time.perf_counter()
    answer = client.invoke(FunctionName=name, Payload=payload, LogType="Tail")
    elapsed = (time.perf_counter() - start) * 1000
    body = json.loads(answer["Payload"].read())
    if answer.get("FunctionError") or body.get("statusCode") != 200:
        raise RuntimeError(f"{name} failed: {str(body)[:500]}")
    tail = base64.b64decode(answer["LogResult"]).decode()
    return elapsed, ReportLine.parse(tail)


def _sync(stage: LocalStage) -> None:
    event = json.loads((EVENTS / "sync_manual.json").read_text())
    start = time.perf_counter()
    result = stage.invoke("SyncFunction", event)
    took = time.perf_counter() - start
    if result.function_error:
        raise RuntimeError(f"sync failed: {result.payload[:500]!r}")
    print(f"sync: {took:.1f} s, answer {result.payload[:200].decode(errors='replace')}")


def _import_profile(
    spec: FunctionSpec, module: str, aws_env: dict[str, str], top: int, repeats: int
) -> tuple[float, list[tuple[str, float]]]:
    """`python -X importtime -c 'import <module>'` in the worker's PYTHONPATH and environment.

    Returns the median cumulative time of the module (ms) and the largest imports it triggered
    directly (medians over `repeats` runs). Importing the handler module runs its init too
    (clients, the prime read), as a cold start does.
    """
    python_path = os.pathsep.join([str(spec.code_dir), *(str(d) for d in spec.layer_dirs)])
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **aws_env,
        **spec.environment,
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "PYTHONPATH": python_path,
        "PYTHONNOUSERSITE": "1",
    }
    runs: list[dict[str, float]] = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(_handler_children(done.stderr, module))
    names = set().union(*runs)
    medians = {n: statistics.median([run.get(n, 0.0) for run in runs]) for n in names}
    total = medians.pop(module)
    return total, sorted(medians.items(), key=lambda row: row[1], reverse=True)[:top]


def _handler_children(stderr: str, module: str) -> dict[str, float]:
    """Cumulative ms of the handler module and of each import it triggered directly.

    `-X importtime` prints children before their parent, indented two spaces per level; the
    handler's own "self" time is its init code (settings, clients, the prime read).
    """
    pending: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative, name = line[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        if depth == 1:
            pending[name.strip()] = int(cumulative) / 1000
        elif depth == 0:
            if name.strip() == module:
                pending[module] = int(cumulative) / 1000
                pending["(init code: the module's own self time)"] = int(self_us) / 1000
                return pending
            pending = {}
    raise RuntimeError(f"{module} not found in the importtime output")


def _row(label: str, values: list[float]) -> str:
    return (
        f"| {label} | {statistics.median(values):.2f} | {_percentile(values, 99):.2f} "
        f"| {min(values):.2f} | {len(values)} |"
    )


def _run(args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    data = Dataset(
        seed=61,
        vulnerability_count=args.findings,
        asset_count=max(1, args.findings // 50),
        remediation_count=args.findings // 10,
        now=now,
    )
    stats_event = _event("api_get_stats.json")
    list_event = _event("api_list_vulnerabilities.json")
    with tempfile.TemporaryDirectory() as folder:
        config = StageConfig(
            api_port=0,
            invoke_port=0,
            moto_port=0,
            vanta_port=0,
            stack_name="bench-api",
            state_file=Path(folder) / "stage.json",
            dataset=data,
        )
        with LocalStage(config) as stage:
            _sync(stage)
            specs = _specs(stage)
            aws_env = aws_environment(stage.urls["aws"], REGION)
            runtime = LocalRuntime(specs, base_env=aws_env, region=REGION)
            server = start_invoke_api(runtime, port=0)
            client = _lambda_client(server.endpoint_url)
            try:
                results = _measure(args, client, specs, stats_event, list_event)
            finally:
                server.close()
                runtime.shutdown()
            results["imports"] = {
                name: _import_profile(
                    specs[name], HANDLER_MODULES[name], aws_env, args.top, args.import_runs
                )
                for name in NAMES
            }
    return results


def _measure(
    args: argparse.Namespace,
    client: Any,
    specs: dict[str, FunctionSpec],
    stats_event: bytes,
    list_event: bytes,
) -> dict[str, Any]:
    cold_total: dict[str, list[float]] = {n: [] for n in NAMES}
    cold_init: dict[str, list[float]] = {n: [] for n in NAMES}
    cold_round: dict[str, list[float]] = {n: [] for n in NAMES}
    for n in range(args.cold):
        order = NAMES[n % 3 :] + NAMES[: n % 3]  # rotate so no function always goes first
        for name in order:
            env = {**specs[name].environment, "BENCH_ROUND": str(n)}
            client.update_function_configuration(FunctionName=name, Environment={"Variables": env})
            elapsed, report = _invoke(client, name, stats_event)
            if report.init_duration_ms is None:
                raise RuntimeError(f"{name} round {n} was not cold")
            cold_init[name].append(report.init_duration_ms)
            cold_total[name].append(report.init_duration_ms + report.duration_ms)
            cold_round[name].append(elapsed)
    series = (
        ("ours /stats", "ours", stats_event),
        ("ours /vulnerabilities (filtered page)", "ours", list_event),
        ("floor /stats", "floor", stats_event),
        ("naive /stats", "naive", stats_event),
    )
    for _ in range(30):  # warm-up: connection pools, first-call caches of every path
        for _, name, payload in series:
            _invoke(client, name, payload)
    warm_duration: dict[str, list[float]] = {label: [] for label, _, _ in series}
    warm_round: dict[str, list[float]] = {label: [] for label, _, _ in series}
    paired: list[float] = []
    for _ in range(args.warm):
        durations = {}
        for label, name, payload in series:
            elapsed, report = _invoke(client, name, payload)
            warm_duration[label].append(report.duration_ms)
            warm_round[label].append(elapsed)
            durations[label] = report.duration_ms
        paired.append(durations["ours /stats"] - durations["floor /stats"])
    return {
        "cold_total": cold_total,
        "cold_init": cold_init,
        "cold_round": cold_round,
        "warm_duration": warm_duration,
        "warm_round": warm_round,
        "paired_overhead": paired,
    }


def _report(results: dict[str, Any]) -> None:
    med = statistics.median
    print("\n### Cold start (forced, interleaved), ms\n")
    print("| series | p50 | p99 | min | n |")
    print("|---|---:|---:|---:|---:|")
    for name in NAMES:
        print(_row(f"{name}: Init Duration", results["cold_init"][name]))
        print(
            _row(
                f"{name}: Init + Duration (fresh worker to first /stats)",
                results["cold_total"][name],
            )
        )
        print(_row(f"{name}: client round trip incl. init", results["cold_round"][name]))
    total = {n: med(results["cold_total"][n]) for n in NAMES}
    trip = {n: med(results["cold_round"][n]) for n in NAMES}
    vs_floor, vs_naive = total["ours"] / total["floor"], total["ours"] / total["naive"]
    trip_floor, trip_naive = trip["ours"] / trip["floor"], trip["ours"] / trip["naive"]
    print("\n| ratio (p50) | Init + Duration | client round trip | target |")
    print("|---|---:|---:|---|")
    print(
        f"| ours / floor | {vs_floor:.2f} | {trip_floor:.2f} | <= {COLD_TARGET_FLOOR} "
        f"({'met' if vs_floor <= COLD_TARGET_FLOOR else 'MISSED'}) |"
    )
    print(
        f"| ours / naive | {vs_naive:.2f} | {trip_naive:.2f} | <= {COLD_TARGET_NAIVE} "
        f"({'met' if vs_naive <= COLD_TARGET_NAIVE else 'MISSED'}) |"
    )
    if vs_floor > COLD_TARGET_FLOOR:
        allowed = COLD_TARGET_FLOOR * total["floor"]
        print(
            f"ours over the 1.25x floor budget by {total['ours'] - allowed:.1f} ms "
            f"({total['ours']:.1f} ms against {allowed:.1f} ms allowed)"
        )
    print("\n### Warm (sequential, interleaved), ms\n")
    print("| series | Duration p50 | Duration p99 | round trip p50 | round trip p99 | n |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, durations in results["warm_duration"].items():
        trips = results["warm_round"][label]
        print(
            f"| {label} | {med(durations):.3f} | {_percentile(durations, 99):.3f} "
            f"| {med(trips):.2f} | {_percentile(trips, 99):.2f} | {len(durations)} |"
        )
    durations = results["warm_duration"]
    overhead = med(durations["ours /stats"]) - med(durations["floor /stats"])
    paired = results["paired_overhead"]
    verdict = "met" if overhead < WARM_OVERHEAD_TARGET_MS else "MISSED"
    print(
        f"\nhandler overhead over the bare GetItem (ours - floor Duration, p50): "
        f"{overhead:.3f} ms; paired per-invocation difference p50 {med(paired):.3f} ms, "
        f"p99 {_percentile(paired, 99):.3f} ms; target < {WARM_OVERHEAD_TARGET_MS} ms ({verdict})"
    )
    print("\n### Import cost (python -X importtime, handler module incl. its init), ms\n")
    for name, (summed, rows) in results["imports"].items():
        top = ", ".join(f"{module} {ms:.1f}" for module, ms in rows)
        print(f"- {name}: {summed:.1f} ms total; largest direct imports: {top}")
    summary = {
        "cold_p50": total,
        "cold_round_trip_p50": trip,
        "ours_over_floor": vs_floor,
        "ours_over_naive": vs_naive,
        "warm_overhead_p50_ms": overhead,
        "warm_paired_overhead_p50_ms": med(paired),
    }
    print("\n" + json.dumps(summary))


def main() -> int:
    """Run the benchmark and print Markdown tables for docs/performance.md."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--findings", type=int, default=3000, help="findings in the data set")
    parser.add_argument("--cold", type=int, default=15, help="forced cold starts per function")
    parser.add_argument("--warm", type=int, default=300, help="warm invocations per series")
    parser.add_argument("--top", type=int, default=6, help="top-level imports to list")
    parser.add_argument("--import-runs", type=int, default=7, help="importtime runs per module")
    args = parser.parse_args()
    if args.cold < 1 or args.warm < 1:
        parser.error("--cold and --warm must be positive")
    _report(_run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
