"""Benchmark ApiFunction against floor, naive and constant handlers, side by side, in one run.

    PYTHONPATH=layers/shared:scripts .venv/bin/python -m bench.api \
        [--findings 3000] [--cold 15] [--warm 300] [--build-dir .aws-sam/build]

One local stage (ports 0, temporary state file) is started and synced once, so the table holds
a real snapshot and real findings. A separate LocalRuntime, behind its own Invoke API, then runs
five functions with the stage's ApiFunction environment and layers: `ours` (the real
ApiFunction, its botocore-free DynamoDB client), `ours-botocore` (the same with
DYNAMODB_CLIENT=botocore), `floor` (boto3, one DynamoDB client, one GetItem), `naive` (boto3
resource, Powertools Logger/Metrics/Tracer and the Event Handler at import) and `constant` (no
import, a fixed answer: the runtime's own floor). Cold starts are forced by an environment change,
interleaved round by round; warm series are interleaved invocation by invocation.
`python -X importtime` attributes the import cost of each handler module.

With --build-dir, ours runs from the `make build` output (read-only, its shipped bytecode) and the
reference handlers are compiled the same way (scripts/buildtools/compile_bytecode.py) into a
scratch folder, so all five run as Lambda runs a zip.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore.config import Config

from buildtools.compile_bytecode import CodeFolder, compile_folder
from localstage.aws import aws_environment
from localstage.invoke_api import start_invoke_api
from localstage.report_line import ReportLine
from localstage.runtime import LocalRuntime
from localstage.stage import LocalStage, StageConfig
from localstage.vanta_data import Dataset
from locate import REPO, local_session

if TYPE_CHECKING:
    from localstage.spec import FunctionSpec

EVENTS: Final = REPO / "events"
HANDLERS: Final = Path(__file__).resolve().parent / "handlers"
REGION: Final = "us-east-1"
NAMES: Final = ("ours", "ours-botocore", "floor", "naive", "constant")
HANDLER_MODULES: Final = {
    "ours": "api_fn.handler",
    "ours-botocore": "api_fn.handler",
    "floor": "bench_floor_fn.handler",
    "naive": "bench_naive_fn.handler",
    "constant": "bench_constant_fn.handler",
}
REFERENCES: Final = ("floor", "naive", "constant")
# Issue 21's targets: cold start to the first /stats at most 0.75 x floor and 0.55 x naive; warm
# /stats Duration within 0.3 ms (p50) of the floor's.
COLD_TARGET_FLOOR: Final = 0.75
COLD_TARGET_NAIVE: Final = 0.55
WARM_OVERHEAD_TARGET_MS: Final = 0.3


def _event(name: str) -> bytes:
    return json.dumps(json.loads((EVENTS / name).read_text())).encode()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _specs(stage: LocalStage, handlers: Path) -> dict[str, FunctionSpec]:
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
    specs = {
        "ours": ours,
        "ours-botocore": dataclasses.replace(
            ours,
            logical_id="ours-botocore",
            function_name="ours-botocore",
            environment={**env, "DYNAMODB_CLIENT": "botocore"},
        ),
    }
    for name in REFERENCES:
        specs[name] = dataclasses.replace(
            ours,
            logical_id=name,
            function_name=name,
            code_dir=handlers / f"bench_{name}",
            handler=f"bench_{name}_fn.handler.handler",
        )
    return specs


def _built_handlers(scratch: Path) -> Path:
    """The reference handlers copied to ``scratch`` with bytecode compiled as `make build` does."""
    target = scratch / "handlers"
    shutil.copytree(HANDLERS, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name in REFERENCES:
        compile_folder(CodeFolder(target / f"bench_{name}", "/var/task"))
    return target


def _lambda_client(endpoint_url: str) -> Any:
    return local_session(REGION).client(
        "lambda",
        endpoint_url=endpoint_url,
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
    spec: FunctionSpec,
    module: str,
    aws_env: dict[str, str],
    top: int,
    repeats: int,
    *,
    built: bool,
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
    if built:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # as the workers run it: read-only code
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
    built = args.build_dir is not None
    built_config: dict[str, Any] = (
        {"template": args.build_dir / "template.yaml", "writable_code": False} if built else {}
    )
    with tempfile.TemporaryDirectory() as folder:
        config = StageConfig.ephemeral(stack_name="bench-api", dataset=data, **built_config)
        handlers = _built_handlers(Path(folder)) if built else HANDLERS
        with LocalStage(config) as stage:
            _sync(stage)
            specs = _specs(stage, handlers)
            aws_env = aws_environment(stage.urls["aws"], REGION)
            runtime = LocalRuntime(specs, base_env=aws_env, region=REGION, write_bytecode=not built)
            server = start_invoke_api(runtime, port=0)
            client = _lambda_client(server.endpoint_url)
            try:
                results = _measure(args, client, specs, stats_event, list_event)
            finally:
                server.close()
                runtime.shutdown()
            results["imports"] = {
                name: _import_profile(
                    specs[name],
                    HANDLER_MODULES[name],
                    aws_env,
                    args.top,
                    args.import_runs,
                    built=built,
                )
                for name in NAMES
            }
    results["source"] = str(args.build_dir) if built else "source folders"
    results["load_average_1m"] = round(os.getloadavg()[0], 2)
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
        shift = n % len(NAMES)
        order = NAMES[shift:] + NAMES[:shift]  # rotate so no function always goes first
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
        ("ours-botocore /stats", "ours-botocore", stats_event),
        ("ours /vulnerabilities (filtered page)", "ours", list_event),
        ("ours-botocore /vulnerabilities (filtered page)", "ours-botocore", list_event),
        ("floor /stats", "floor", stats_event),
        ("naive /stats", "naive", stats_event),
        ("constant", "constant", stats_event),
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
    targets = {"floor": COLD_TARGET_FLOOR, "naive": COLD_TARGET_NAIVE}
    print(
        "\n| ratio | Init + Duration p50 | paired per round, median | client round trip p50 "
        "| target |"
    )
    print("|---|---:|---:|---:|---|")
    ratios: dict[str, float] = {}
    for other in ("floor", "naive", "constant", "ours-botocore"):
        ratio = total["ours"] / total[other]
        ratios[other] = ratio
        rounds = zip(results["cold_total"]["ours"], results["cold_total"][other], strict=True)
        paired_ratio = med(ours / theirs for ours, theirs in rounds)
        target = targets.get(other)
        verdict = (
            "" if target is None else f"<= {target} ({'met' if ratio <= target else 'MISSED'})"
        )
        print(
            f"| ours / {other} | {ratio:.2f} | {paired_ratio:.2f} "
            f"| {trip['ours'] / trip[other]:.2f} | {verdict} |"
        )
    for other, target in targets.items():
        if ratios[other] > target:
            allowed = target * total[other]
            print(
                f"ours over the {target} x {other} budget by {total['ours'] - allowed:.1f} ms "
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
    # "Within 0.3 ms of the floor": no more than that slower (faster is within it too).
    verdict = "met" if overhead <= WARM_OVERHEAD_TARGET_MS else "MISSED"
    print(
        f"\nhandler overhead over the bare GetItem (ours - floor Duration, p50): "
        f"{overhead:.3f} ms; paired per-invocation difference p50 {med(paired):.3f} ms, "
        f"p99 {_percentile(paired, 99):.3f} ms; target at most {WARM_OVERHEAD_TARGET_MS} ms "
        f"({verdict})"
    )
    print("\n### Import cost (python -X importtime, handler module incl. its init), ms\n")
    for name, (summed, rows) in results["imports"].items():
        top = ", ".join(f"{module} {ms:.1f}" for module, ms in rows)
        print(f"- {name}: {summed:.1f} ms total; largest direct imports: {top}")
    summary = {
        "source": results["source"],
        "load_average_1m_at_end": results["load_average_1m"],
        "cold_p50": total,
        "cold_round_trip_p50": trip,
        **{f"ours_over_{other.replace('-', '_')}": ratio for other, ratio in ratios.items()},
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
    parser.add_argument(
        "--build-dir", type=Path, default=None, help="run ours from this `make build` output"
    )
    args = parser.parse_args()
    if args.cold < 1 or args.warm < 1:
        parser.error("--cold and --warm must be positive")
    if args.build_dir is not None and not (args.build_dir / "template.yaml").is_file():
        parser.error(f"--build-dir: {args.build_dir}/template.yaml not found; run `make build`")
    _report(_run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
