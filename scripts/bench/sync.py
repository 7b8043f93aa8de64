"""Benchmark of the sync: peak memory versus listing size, first-run and unchanged-rerun speed.

Each size runs in a fresh child process (so its peak RSS is its own) against a fresh moto server
and a Vanta stand-in in a third process (so neither competes with the measured engine for the
GIL). In the child, in order: the reference (the real Vanta client walking every finding page,
no storage), a first sync run (real SyncEngine, DynamoStore, S3Archive), and an unchanged
re-run. Reports JSON lines and a summary table; writes nothing but its output.

    PYTHONPATH=layers/shared:scripts .venv/bin/python -m bench.sync \
        --findings 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from locate import REPO, TEMPLATE, local_session

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

REGION: Final = "us-east-1"
NOW: Final = "2025-01-01T12:00:00.000Z"
_PYTHONPATH: Final = os.pathsep.join(str(REPO / part) for part in ("layers/shared", "scripts"))


def _vm_hwm_kib() -> int:
    """Peak resident set size of this process (/proc VmHWM), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class _Timed:
    """Wraps a port adapter and adds up the wall time spent in each of its methods
    (including the consumption of the iterators they return)."""

    def __init__(self, target: object, totals: dict[str, float], prefix: str) -> None:
        self._target = target
        self._totals = totals
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value
        totals = self._totals
        name = f"{self._prefix}.{name}"

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = value(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - started
            if hasattr(result, "__next__"):
                return _timed_iter(result, name, totals)
            return result

        return timed


def _timed_iter(inner: Iterator[Any], name: str, totals: dict[str, float]) -> Iterator[Any]:
    while True:
        started = time.perf_counter()
        try:
            item = next(inner)
        except StopIteration:
            return
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - started
        yield item


# ----------------------------------------------------------------------------- the child


def _child(args: argparse.Namespace) -> int:
    """One measured process: reference walk, first run, unchanged re-run; prints one JSON."""
    import requests  # noqa: PLC0415 - the child only: the parent stays light

    from localstage.aws import prepare_local_stack  # noqa: PLC0415
    from localstage.vanta_standin import DEFAULT_CREDENTIALS  # noqa: PLC0415
    from vulnstats.archive import S3Archive  # noqa: PLC0415
    from vulnstats.dynamo import DynamoStore  # noqa: PLC0415
    from vulnstats.sync import SyncConfig, SyncEngine  # noqa: PLC0415
    from vulnstats.vanta import (  # noqa: PLC0415
        StaticCredentials,
        VantaClient,
        VantaClientConfig,
        new_breaker,
    )

    session = local_session(REGION)
    dynamodb = session.client("dynamodb", endpoint_url=args.endpoint)
    s3 = session.client("s3", endpoint_url=args.endpoint)
    _, created = prepare_local_stack(
        TEMPLATE,
        args.endpoint,
        vanta_credentials={"client_id": "bench", "client_secret": "bench"},
        stack_name=f"bench-{uuid.uuid4().hex[:8]}",
        region=REGION,
    )
    config = VantaClientConfig(
        base_url=args.standin_url, page_size=args.page_size, pages_per_minute=None
    )
    http = requests.Session()

    def client() -> VantaClient:
        return VantaClient(
            StaticCredentials(DEFAULT_CREDENTIALS.client_id, DEFAULT_CREDENTIALS.client_secret),
            config=config,
            session=http,
            breaker=new_breaker(config),
        )

    result: dict[str, Any] = {"findings": args.findings[0], "page_size": args.page_size}
    result["rss_kib_at_start"] = _vm_rss_kib()

    # Reference: the client alone, walking every finding page (what the upstream allows).
    reference = client()
    started = time.perf_counter()
    seen = sum(len(page.records) for page in reference.iter_vulnerabilities())
    elapsed = time.perf_counter() - started
    result["reference"] = {
        "records": seen,
        "seconds": round(elapsed, 3),
        "records_per_second": round(seen / elapsed, 1),
    }
    result["hwm_kib_after_reference"] = _vm_hwm_kib()

    for label in ("first_run", "unchanged_rerun"):
        store = DynamoStore(created["StateTable"], client=dynamodb)
        archive = S3Archive(created["ArchiveBucket"], client=s3)
        upstream = client()
        totals: dict[str, float] = {}
        timed_store = cast("DynamoStore", _Timed(store, totals, "store"))
        engine = SyncEngine(
            client=cast("VantaClient", _Timed(upstream, totals, "upstream")),
            state=timed_store,
            runs=timed_store,
            snapshots=timed_store,
            archive=cast("S3Archive", _Timed(archive, totals, "archive")),
            start_continuation=lambda run_id, seq: None,
            remaining_seconds=lambda: 100_000.0,
            config=SyncConfig(page_size=args.page_size),
        )
        started, cpu = time.perf_counter(), time.process_time()
        outcome = engine.start("manual", "benchmark")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        counts = outcome.run_counts
        result[label] = {
            "status": outcome.status,
            "seconds": round(elapsed, 3),
            "engine_cpu_seconds": round(cpu, 3),
            "records": counts.fetched,
            "records_per_second": round(counts.fetched / elapsed, 1),
            "pages": counts.pages,
            "items_written": sum(store.items_written.values()),
            "items_deleted": sum(store.items_deleted.values()),
            "raw_objects": archive.objects_written["raw"],
            "hwm_kib_after": _vm_hwm_kib(),
            # Wall seconds inside each port method (the upstream's iter_* include fetching).
            "seconds_in": {name: round(value, 3) for name, value in sorted(totals.items())},
        }
    result["peak_rss_kib"] = _vm_hwm_kib()
    result["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result), flush=True)
    return 0


# ----------------------------------------------------------------------------- the parent


class _Process:
    """A helper process started with the repository's packages on its path."""

    def __init__(self, args: Sequence[str]) -> None:
        env = {**os.environ, "PYTHONPATH": _PYTHONPATH}
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def first_line_with(self, marker: str) -> str:
        if self.proc.stdout is None:
            raise RuntimeError("helper started without a stdout pipe")
        for line in self.proc.stdout:
            if marker in line:
                return line
        raise RuntimeError(f"helper exited before printing {marker!r}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _standin(findings: int, assets: int, remediations: int) -> Iterator[tuple[_Process, str]]:
    proc = _Process(
        [
            "-m",
            "localstage.vanta_standin",
            "--port",
            "0",
            "--vulnerabilities",
            str(findings),
            "--assets",
            str(assets),
            "--remediations",
            str(remediations),
            "--now",
            NOW,
        ]
    )
    line = proc.first_line_with("listening on ")
    yield proc, line.rsplit("listening on ", 1)[1].strip()


def _measure(findings: int, args: argparse.Namespace) -> dict[str, Any]:
    from localstage.aws import start_moto  # noqa: PLC0415

    assets, remediations = max(20, findings // 100), max(60, findings // 20)
    with start_moto("127.0.0.1", 0) as moto:
        for standin, url in _standin(findings, assets, remediations):
            try:
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        "--endpoint",
                        moto.endpoint_url,
                        "--standin-url",
                        url,
                        "--findings",
                        str(findings),
                        "--page-size",
                        str(args.page_size),
                    ],
                    cwd=REPO,
                    env={**os.environ, "PYTHONPATH": _PYTHONPATH},
                    capture_output=True,
                    text=True,
                    check=False,
                )
            finally:
                standin.stop()
            if child.returncode != 0:
                raise RuntimeError(f"child for {findings} findings failed:\n{child.stderr[-3000:]}")
            result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
            result["assets"], result["remediations"] = assets, remediations
            return result
    raise RuntimeError("the stand-in did not start")


def _summary(results: list[dict[str, Any]]) -> str:
    lines = [
        "| findings | peak RSS MiB | reference rec/s | first run rec/s | first/ref | "
        "first run written | rerun rec/s | rerun written | rerun/first writes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        first, rerun, ref = r["first_run"], r["unchanged_rerun"], r["reference"]
        lines.append(
            f"| {r['findings']:,} | {r['peak_rss_kib'] / 1024:.1f} | "
            f"{ref['records_per_second']:,.0f} | {first['records_per_second']:,.0f} | "
            f"{first['records_per_second'] / ref['records_per_second']:.2f} | "
            f"{first['items_written']:,} | {rerun['records_per_second']:,.0f} | "
            f"{rerun['items_written']:,} | "
            f"{rerun['items_written'] / max(1, first['items_written']):.2%} |"
        )
    if len(results) >= 2:
        small, large = results[0], results[-1]
        lines.append("")
        lines.append(
            f"peak RSS ratio {large['findings']:,} / {small['findings']:,} findings: "
            f"{large['peak_rss_kib'] / small['peak_rss_kib']:.3f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and run the parent or the child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--standin-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    print(
        f"# bench_sync {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    results = []
    for findings in args.findings:
        result = _measure(findings, args)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
