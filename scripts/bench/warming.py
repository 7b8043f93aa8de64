"""Does the warmer keep N environments warm, and what does a tick cost? Measured on the local stage.

    PYTHONPATH=layers/shared:scripts .venv/bin/python -m bench.warming [--n 3] [--rounds 5]
    PYTHONPATH=layers/shared:scripts .venv/bin/python -m bench.warming \\
        --stage-file .local/stage.json      # against the stage `make local` runs

Every call goes through the stage's Lambda Invoke API with boto3, so both ways measure the same
thing. Each round, interleaved so that machine load hits every series alike:

1. the API is made cold (a configuration change ends its environments) and N concurrent real
   requests (GET /health events on the live alias) are sent: the cold reference;
2. the API is made cold again; the warmer ticks twice (the first tick creates N environments,
   the second finds them warm: the steady state of a schedule);
3. N concurrent real requests follow: how many were warm, and their latency;
4. one warming ping sent directly: the reference a tick's own duration is compared with.

A request is warm when its REPORT line has no Init Duration and its EMF carries no ColdStart.
The summary is printed as JSON (medians and ratios); figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from botocore.config import Config

from localstage.report_line import ReportLine
from localstage.stage import LocalStage, StageConfig
from localstage.vanta_data import Dataset
from locate import REPO, LocateError, local_session, running_stage

EVENTS: Final = REPO / "events"
API: Final = "ApiFunction"
WARMER: Final = "WarmerFunction"


def _client(endpoint_url: str, region: str) -> Any:
    return local_session(region).client(
        "lambda",
        endpoint_url=endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=120),
    )


def _event(name: str) -> bytes:
    return (EVENTS / name).read_bytes()


def _call(client: Any, target: str, payload: bytes) -> dict[str, Any]:
    started = time.perf_counter()
    answer = client.invoke(FunctionName=target, Payload=payload, LogType="Tail")
    body = json.loads(answer["Payload"].read())
    latency_ms = (time.perf_counter() - started) * 1000
    log = base64.b64decode(answer["LogResult"]).decode()
    report = ReportLine.parse(log)
    cold_metric = '"ColdStart"' in log
    return {
        "latency_ms": latency_ms,
        "duration_ms": report.duration_ms,
        "init_ms": report.init_duration_ms,
        "warm": report.init_duration_ms is None and not cold_metric,
        "error": answer.get("FunctionError"),
        "body": body,
    }


def _concurrently(client: Any, target: str, payload: bytes, n: int) -> list[dict[str, Any]]:
    start = threading.Barrier(n, timeout=60)

    def one(_: int) -> dict[str, Any]:
        start.wait()
        return _call(client, target, payload)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _make_cold(client: Any) -> None:
    config = client.get_function_configuration(FunctionName=API)
    client.update_function_configuration(
        FunctionName=API, Environment={"Variables": dict(config["Environment"]["Variables"])}
    )


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else float("nan")


def _round(client: Any, alias: str, n: int) -> dict[str, Any]:
    health = _event("api_get_health.json")
    _make_cold(client)
    cold = _concurrently(client, alias, health, n)
    _make_cold(client)
    ticks = [_call(client, WARMER, _event("warmer_scheduled.json")) for _ in range(2)]
    warm = _concurrently(client, alias, health, n)
    ping = _call(client, alias, json.dumps({"warmer": True}).encode())
    return {"cold": cold, "ticks": ticks, "warm": warm, "ping": ping}


def _summary(rounds: list[dict[str, Any]], n: int) -> dict[str, Any]:
    first = [r["ticks"][0] for r in rounds]
    steady = [r["ticks"][1] for r in rounds]
    warm = [call for r in rounds for call in r["warm"]]
    cold = [call for r in rounds for call in r["cold"]]
    pings = [r["ping"] for r in rounds]
    tick_run = _median([t["body"]["duration_ms"] for t in steady])
    hold = steady[0]["body"]["hold_ms"]
    ping_latency = _median([p["latency_ms"] for p in pings])
    warm_latency = _median([c["latency_ms"] for c in warm])
    cold_latency = _median([c["latency_ms"] for c in cold])
    return {
        "n": n,
        "rounds": len(rounds),
        "first_tick": {
            "reached": [t["body"]["reached"] for t in first],
            "cold": [t["body"]["cold"] for t in first],
            "run_ms_median": _median([t["body"]["duration_ms"] for t in first]),
            "billed_duration_ms_median": _median([t["duration_ms"] for t in first]),
        },
        "steady_tick": {
            "reached": [t["body"]["reached"] for t in steady],
            "cold": [t["body"]["cold"] for t in steady],
            "failures": sum(t["body"]["failures"] + t["body"]["throttles"] for t in steady),
            "run_ms_median": tick_run,
            "billed_duration_ms_median": _median([t["duration_ms"] for t in steady]),
            "hold_ms": hold,
            # what the fan-out costs beyond the hold each environment is asked to wait
            "overhead_ms_median": _median([t["body"]["duration_ms"] - hold for t in steady]),
        },
        "requests_after_warming": {
            "warm": sum(1 for c in warm if c["warm"]),
            "of": len(warm),
            "latency_ms_median": warm_latency,
        },
        "requests_without_warming": {
            "warm": sum(1 for c in cold if c["warm"]),
            "of": len(cold),
            "latency_ms_median": cold_latency,
            "init_ms_median": _median([c["init_ms"] for c in cold if c["init_ms"] is not None]),
        },
        "single_warm_ping_latency_ms_median": ping_latency,
        "ratios": {
            "steady_tick_over_hold": round(tick_run / hold, 2) if hold else None,
            "steady_tick_over_single_ping": round(tick_run / ping_latency, 2),
            "cold_request_over_warm_request": round(cold_latency / warm_latency, 2),
        },
    }


def _measure(client: Any, alias: str, n: int, rounds: int) -> dict[str, Any]:
    results = [_round(client, alias, n) for _ in range(rounds)]
    errors = [
        call
        for r in results
        for call in [*r["cold"], *r["ticks"], *r["warm"], r["ping"]]
        if call["error"]
    ]
    if errors:
        raise SystemExit(f"{len(errors)} invocations failed: {errors[0]['body']}")
    return _summary(results, n)


def main(argv: list[str] | None = None) -> int:
    """Run the rounds on a private stage, or on a running one (--stage-file), print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=3, help="WarmerConcurrency of a private stage")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stage-file", type=Path, help="a running stage's .local/stage.json")
    args = parser.parse_args(argv)
    if args.stage_file is not None:
        try:
            info = running_stage(args.stage_file)
            alias = f"{info.function(API)}:live" if info is not None else ""
        except LocateError as exc:
            parser.exit(2, f"bench.warming: {exc}\n")
        if info is None:
            parser.exit(2, f"bench.warming: no local stage is running ({args.stage_file})\n")
        n = int(info.parameters["WarmerConcurrency"])
        summary = _measure(_client(info.invoke_endpoint_url, info.region), alias, n, args.rounds)
    else:
        config = StageConfig.ephemeral(
            stack_name="bench-warming",
            dataset=Dataset(seed=11, vulnerability_count=50, now=datetime.now(UTC)),
            overrides={"WarmingStrategy": "warmer", "WarmerConcurrency": str(args.n)},
            lambda_via_invoke_api=True,
        )
        with LocalStage(config) as stage:
            client = _client(stage.urls["invoke"], config.region)
            alias = f"{stage.describe()['functions'][API]}:live"
            summary = _measure(client, alias, args.n, args.rounds)
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
