"""Benchmark the local Lambda runtime's own cost: warm overhead per invoke and an empty cold start.

    PYTHONPATH=scripts .venv/bin/python -m bench.local_runtime [--warm 300] [--cold 15]

Warm overhead = client round trip through the Invoke API (boto3) minus the handler's own REPORT
Duration. Cold start of an empty handler is compared, in the same run, with the floor of any
Python process: `python -c pass` and `python -c "import awslambdaric.bootstrap"`.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.config import Config

from localstage.invoke_api import start_invoke_api
from localstage.report_line import ReportLine
from localstage.runtime import LocalRuntime
from localstage.spec import FunctionSpec
from locate import local_session

EMPTY_HANDLER = "def handler(event, context):\n    return None\n"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _summary(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values):7.2f}  p90 {_percentile(values, 90):7.2f}  "
        f"p99 {_percentile(values, 99):7.2f}  min {min(values):7.2f}  (n={len(values)})"
    )


def _process_floors(codes: list[str], repeats: int) -> list[list[float]]:
    """Wall time of `python -c <code>` for each code, interleaved so noise hits all alike."""
    times: list[list[float]] = [[] for _ in codes]
    for _ in range(repeats):
        for series, code in zip(times, codes, strict=True):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            series.append((time.perf_counter() - start) * 1000)
    return times


def _invoke(client: Any, env: dict[str, str] | None = None) -> tuple[float, ReportLine]:
    if env is not None:
        client.update_function_configuration(FunctionName="empty", Environment={"Variables": env})
    start = time.perf_counter()
    answer = client.invoke(FunctionName="empty", Payload=b"{}", LogType="Tail")
    elapsed = (time.perf_counter() - start) * 1000
    tail = base64.b64decode(answer["LogResult"]).decode()
    return elapsed, ReportLine.parse(tail)


def main() -> int:
    """Run the benchmark and print a table for docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=300, help="warm invocations")
    parser.add_argument("--cold", type=int, default=15, help="forced cold starts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        code = Path(folder) / "code"
        (code / "bench_empty").mkdir(parents=True)
        (code / "bench_empty" / "__init__.py").write_text("")
        (code / "bench_empty" / "handler.py").write_text(EMPTY_HANDLER)
        spec = FunctionSpec(
            logical_id="empty",
            function_name="empty",
            code_dir=code,
            handler="bench_empty.handler.handler",
            runtime="python3.13",
            architecture="x86_64",
            memory_mb=128,
            timeout_s=10,
            reserved_concurrency=None,
            environment={},
            layer_dirs=(),
        )
        runtime = LocalRuntime({"empty": spec}, base_env={"AWS_REGION": "us-east-1"})
        server = start_invoke_api(runtime, port=0)
        client = local_session("us-east-1").client(
            "lambda",
            endpoint_url=server.endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        try:
            # Each round: one forced cold start, then one run of each reference process, so that
            # background load on the machine falls on all three series alike.
            cold_round, cold_init = [], []
            floor_pass: list[float] = []
            floor_ric: list[float] = []
            for n in range(args.cold):
                elapsed, report = _invoke(client, {"RUN": str(n)})
                cold_round.append(elapsed)
                cold_init.append(report.init_duration_ms or 0.0)
                one_pass, one_ric = _process_floors(["pass", "import awslambdaric.bootstrap"], 1)
                floor_pass += one_pass
                floor_ric += one_ric
            for _ in range(20):  # warm-up of the client's connection pool and the worker
                _invoke(client)
            overhead, round_trip = [], []
            for _ in range(args.warm):
                elapsed, report = _invoke(client)
                round_trip.append(elapsed)
                overhead.append(elapsed - report.duration_ms)
        finally:
            server.close()
            runtime.shutdown()
    results = {
        "warm round trip (ms)": round_trip,
        "warm overhead = round trip - Duration (ms)": overhead,
        "cold: Init Duration of empty handler (ms)": cold_init,
        "cold: client round trip incl. init (ms)": cold_round,
        "reference: python -c pass (ms)": floor_pass,
        "reference: python -c 'import awslambdaric.bootstrap' (ms)": floor_ric,
    }
    for name, values in results.items():
        print(f"{name:48s} {_summary(values)}")
    for label, floor in (("python -c pass", floor_pass), ("import bootstrap", floor_ric)):
        ratio = statistics.median(cold_init) / statistics.median(floor)
        print(f"{'cold Init Duration / ' + label + ' (p50 ratio)':48s} {ratio:.2f}")
    print(json.dumps({k: statistics.median(v) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
