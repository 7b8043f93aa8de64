"""Log volume of the functions with and without the DEBUG log buffer, errors injected in some.

    PYTHONPATH=layers/shared:scripts .venv/bin/python -m bench.logs [--requests 1000]

One local stage per configuration (EnvironmentName=prod, so DEBUG sampling is prod's 1 %):
`debug` (LogLevel=DEBUG: every DEBUG line written, the only way to have debug context on every
failure without a buffer), `unbuffered` (INFO, LogBufferBytes=0: no debug context) and
`buffered` (INFO, LogBufferBytes=20480, the default). Each runs the same traffic: a complete sync
run, a sync run that fails (the Vanta stand-in answers 503 from the fifth page on), and
``--requests`` API requests over five routes of which every 50th reads a finding whose stored
``remediateByDate`` is corrupt (a number), so the API answers 500 and logs the error. Counted:
bytes of the lines the functions write (platform START/END/REPORT lines are the same in every
configuration and left out), and how many of the erroring invocations carried DEBUG lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localstage.worker import LogLine

import argparse
import json
import os
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import requests

from localstage.aws import local_client
from localstage.stage import LocalStage, StageConfig
from localstage.vanta_data import Dataset
from vulnstats.items import state_key

REPO: Final = Path(__file__).resolve().parents[2]
CONFIGS: Final = {
    "debug": {"LogLevel": "DEBUG", "LogBufferBytes": "0"},
    "unbuffered": {"LogLevel": "INFO", "LogBufferBytes": "0"},
    "buffered": {"LogLevel": "INFO", "LogBufferBytes": "20480"},
}
PLATFORM: Final = ("START ", "END ", "REPORT ", "INIT_START ")
CORRUPT_ID: Final = "bench-corrupt-finding"
ERROR_EVERY: Final = 50


@dataclass
class Sink:
    """Bytes and lines the functions write, per function, since the last mark."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    lines: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, line: LogLine) -> None:
        with self.lock:
            self.lines.append((line.function, line.text))

    def since(self, start: int, function: str) -> list[str]:
        with self.lock:
            return [
                line
                for name, line in self.lines[start:]
                if name == function and not line.startswith(PLATFORM)
            ]

    def mark(self) -> int:
        with self.lock:
            return len(self.lines)


def private_stage(name: str, sink: Sink, overrides: dict[str, str]) -> StageConfig:
    """A stage on free ports, with no state file, the default data set and ``sink`` on its logs."""
    return StageConfig(
        api_port=0,
        invoke_port=0,
        moto_port=0,
        vanta_port=0,
        stack_name=name,
        state_file=None,
        dataset=Dataset(seed=7, now=datetime.now(UTC)),
        overrides=overrides,
        log_sink=sink,
    )


def _volume(lines: list[str]) -> dict[str, int]:
    debug = sum(1 for line in lines if '"level":"DEBUG"' in line)
    return {"bytes": sum(len(line.encode()) + 1 for line in lines), "debug_lines": debug}


def _invoke_sync(stage: LocalStage) -> str:
    event = json.loads((REPO / "events" / "sync_manual.json").read_text())
    result = stage.invoke("SyncFunction", event)
    return str(json.loads(result.payload).get("status"))


def corrupt_finding(stage: LocalStage, finding_id: str = CORRUPT_ID) -> None:
    """Store a finding whose remediateByDate is a number: reading it makes the API answer 500."""
    client = local_client("dynamodb", stage.urls["aws"], stage.config.region)
    item = {**state_key("vulnerabilities", finding_id), "remediateByDate": {"N": "20250101"}}
    client.put_item(TableName=stage.physical_ids["StateTable"], Item=item)


def _measure(
    name: str, overrides: dict[str, str], requests_total: int, dump: Path | None
) -> dict[str, Any]:
    sink = Sink()
    config = private_stage(f"bench-logs-{name}", sink, {"EnvironmentName": "prod", **overrides})
    result: dict[str, Any] = {"config": name, **overrides}
    with LocalStage(config) as stage:
        start = sink.mark()
        status = _invoke_sync(stage)
        result["sync_ok"] = {"status": status, **_volume(sink.since(start, "SyncFunction"))}
        if stage.standin is None:
            raise RuntimeError("the stage has no Vanta stand-in")
        stage.standin.set_faults(
            {"rules": [{"kind": "status", "status": 503, "at": 5, "times": None}]}
        )
        start = sink.mark()
        status = _invoke_sync(stage)
        result["sync_failed"] = {"status": status, **_volume(sink.since(start, "SyncFunction"))}
        stage.standin.reset()
        corrupt_finding(stage)
        routes = [
            "/stats",
            "/vulnerabilities?limit=20",
            "/sync/runs",
            "/health",
            "/stats/history?days=7",
        ]
        statuses: dict[int, int] = defaultdict(int)
        start = sink.mark()
        with requests.Session() as http:
            for number in range(requests_total):
                path = (
                    f"/vulnerabilities/{CORRUPT_ID}"
                    if number % ERROR_EVERY == ERROR_EVERY - 1
                    else routes[number % len(routes)]
                )
                answer = http.get(stage.urls["api"] + path, headers={"x-api-key": stage.api_key})
                statuses[answer.status_code] += 1
        api = _volume(sink.since(start, "ApiFunction"))
        if dump is not None:
            dump.write_text("\n".join(f"{n}\t{line}" for n, line in sink.lines))
        result["api"] = {
            "requests": requests_total,
            "statuses": dict(sorted(statuses.items())),
            **api,
            "bytes_per_1000": round(api["bytes"] * 1000 / requests_total),
        }
    return result


def _table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| configuration | API bytes / 1,000 req | API DEBUG lines | sync ok bytes | "
        "sync failed bytes | failed-run DEBUG lines |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['config']} | {r['api']['bytes_per_1000']:,} | {r['api']['debug_lines']} | "
            f"{r['sync_ok']['bytes']:,} | {r['sync_failed']['bytes']:,} | "
            f"{r['sync_failed']['debug_lines']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Measure every configuration in turn; print JSON lines and a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--dump", type=Path, help="directory to write each configuration's log lines to"
    )
    args = parser.parse_args(argv)
    if args.requests < ERROR_EVERY:
        parser.error(f"--requests must be at least {ERROR_EVERY} (one injected error)")
    print(
        f"# bench_logs {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    results = []
    for name, overrides in CONFIGS.items():
        dump = None if args.dump is None else args.dump / f"{name}.log"
        result = _measure(name, overrides, args.requests, dump)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
