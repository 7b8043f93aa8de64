"""API latency with the metrics forwarder's intake up and down, on one local stage, interleaved.

    PYTHONPATH=layers/shared:scripts .venv/bin/python -m bench.forwarder [--rounds 10 --requests 30]

One stage with MetricsForwarder=datadog (the Datadog stand-in, the emulated log subscriptions
and the real MetricsForwarderFunction). Each round sends ``--requests`` GET /stats with the
stand-in up, then as many with it answering 503 to everything (the forwarder retries, opens its
circuit and keeps the points in its DLQ), the subscription delivering after every request. The
ApiFunction's REPORT durations and the client's round trips are compared between the two
conditions in the same run: the ratio says whether a failing third party slows the API.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any, Final

import requests

from bench.logs import Sink, private_stage
from localstage.datadog_standin import Fault
from localstage.report_line import ReportLine
from localstage.stage import LocalStage

CONDITIONS: Final = ("up", "down")


def _round(stage: LocalStage, sink: Sink, http: requests.Session, count: int) -> dict[str, Any]:
    if stage.logs is None:
        raise RuntimeError("the stage is not running")
    start = sink.mark()
    trips = []
    for _ in range(count):
        began = time.perf_counter()
        answer = http.get(stage.urls["api"] + "/stats", headers={"x-api-key": stage.api_key})
        trips.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"GET /stats answered {answer.status_code}")
        stage.logs.flush()
    with sink.lock:
        lines = [line for name, line in sink.lines[start:] if name == "ApiFunction"]
    durations = [ReportLine.parse(line).duration_ms for line in lines if line.startswith("REPORT")]
    return {"round_trip_ms": trips, "duration_ms": durations}


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print medians per condition and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be at least 1")
    sink = Sink()
    config = private_stage("bench-forwarder", sink, {"MetricsForwarder": "datadog"})
    samples: dict[str, dict[str, list[float]]] = {
        c: {"round_trip_ms": [], "duration_ms": []} for c in CONDITIONS
    }
    print(
        f"# bench_forwarder {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs",
        flush=True,
    )
    with LocalStage(config) as stage, requests.Session() as http:
        if stage.datadog is None:
            raise RuntimeError("the stage started no Datadog stand-in")
        stage.invoke("SyncFunction", {"action": "sync", "reason": "bench"})
        _round(stage, sink, http, args.requests)  # warm the API and the forwarder, not counted
        for _ in range(args.rounds):
            for condition in CONDITIONS:
                stage.datadog.set_fault(None if condition == "up" else Fault("status", status=503))
                measured = _round(stage, sink, http, args.requests)
                for key, values in measured.items():
                    samples[condition][key] += values
        stage.datadog.set_fault(None)
    for key in ("duration_ms", "round_trip_ms"):
        up, down = (statistics.median(samples[c][key]) for c in CONDITIONS)
        print(
            f"{key}: median up {up:.2f}, down {down:.2f}, ratio down/up {down / up:.3f} "
            f"(n={len(samples['up'][key])} each)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
