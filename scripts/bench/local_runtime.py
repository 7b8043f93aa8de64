"""Benchmark the local Lambda runtime's own cost: warm overhead per invoke and an empty cold start.

    PYTHONPATH=scripts:layers/shared .venv/bin/python -m bench.local_runtime \
        [--warm 300] [--cold 15]

Warm overhead = client round trip through the Invoke API minus the handler's own REPORT Duration,
measured two ways in interleaved rounds: with boto3 (what a developer's script sees) and with a
bare http.client request (the stage's own share). A third series times the same boto3 call
against a stub server that answers at once: boto3's own cost, which no stage can remove.
Cold start of an empty handler is compared, in the same run, with the floor of any Python
process: `python -c pass` and `python -c "import awslambdaric.bootstrap"`.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import http.server
import json
import statistics
import subprocess
import sys
import tempfile
import threading
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


INVOKE_PATH = "/2015-03-31/functions/empty/invocations"


class _StubInvokeHandler(http.server.BaseHTTPRequestHandler):
    """Answers every Invoke at once with a null result: the client-side reference."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Amz-Executed-Version", "$LATEST")
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"null")


def _raw_invoke(conn: http.client.HTTPConnection) -> tuple[float, ReportLine]:
    """One Invoke with http.client alone: no signing, no parsing beyond the REPORT line."""
    start = time.perf_counter()
    conn.request("POST", INVOKE_PATH, body=b"{}", headers={"X-Amz-Log-Type": "Tail"})
    answer = conn.getresponse()
    answer.read()
    elapsed = (time.perf_counter() - start) * 1000
    tail = base64.b64decode(answer.getheader("X-Amz-Log-Result") or "").decode()
    return elapsed, ReportLine.parse(tail)


def _stub_invoke(client: Any) -> float:
    start = time.perf_counter()
    client.invoke(FunctionName="empty", Payload=b"{}")["Payload"].read()
    return (time.perf_counter() - start) * 1000


def _invoke(client: Any, env: dict[str, str] | None = None) -> tuple[float, ReportLine]:
    if env is not None:
        client.update_function_configuration(FunctionName="empty", Environment={"Variables": env})
    start = time.perf_counter()
    answer = client.invoke(FunctionName="empty", Payload=b"{}", LogType="Tail")
    elapsed = (time.perf_counter() - start) * 1000
    tail = base64.b64decode(answer["LogResult"]).decode()
    return elapsed, ReportLine.parse(tail)


def _warm_series(
    client: Any, raw: http.client.HTTPConnection, stub_client: Any, count: int
) -> dict[str, list[float]]:
    """The warm series, interleaved call by call so that load falls on every series alike."""
    for _ in range(20):  # warm-up of the connections and the worker
        _invoke(client)
        _raw_invoke(raw)
        _stub_invoke(stub_client)
    series: dict[str, list[float]] = {
        "warm round trip (ms)": [],
        "warm overhead = round trip - Duration (ms)": [],
        "warm overhead without boto3 (http.client) (ms)": [],
        "reference: boto3 invoke of a stub server (ms)": [],
    }
    round_trip, overhead, raw_overhead, stub = series.values()
    for _ in range(count):
        elapsed, report = _invoke(client)
        round_trip.append(elapsed)
        overhead.append(elapsed - report.duration_ms)
        elapsed, report = _raw_invoke(raw)
        raw_overhead.append(elapsed - report.duration_ms)
        stub.append(_stub_invoke(stub_client))
    return series


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
        stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubInvokeHandler)
        threading.Thread(target=stub.serve_forever, daemon=True).start()
        session = local_session("us-east-1")
        config = Config(retries={"mode": "standard", "max_attempts": 1})
        client = session.client("lambda", endpoint_url=server.endpoint_url, config=config)
        stub_client = session.client(
            "lambda", endpoint_url=f"http://127.0.0.1:{stub.server_port}", config=config
        )
        raw = http.client.HTTPConnection("127.0.0.1", int(server.endpoint_url.rsplit(":", 1)[1]))
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
            warm = _warm_series(client, raw, stub_client, args.warm)
        finally:
            raw.close()
            stub.shutdown()
            stub.server_close()
            server.close()
            runtime.shutdown()
    results = {
        **warm,
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
