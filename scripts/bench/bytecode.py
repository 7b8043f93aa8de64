"""How much does shipping bytecode save on a cold start? The built ApiFunction, with and without.

    make build
    PYTHONPATH=scripts .venv/bin/python -m bench.bytecode [--rounds 15]

Two copies of one `sam build` output (default .aws-sam/build) run side by side on two private
local stages, each as Lambda runs a zip: code read-only, no bytecode written at import.
- **compiled**: what `make build` ships, an unchecked-hash .pyc next to every module;
- **plain**: the same build as `sam build` leaves it (no bytecode at all), which is also what a
  timestamp-checked .pyc amounts to once `sam package` has zipped it with 1980 timestamps.

Each round forces one cold start of each copy (a configuration change ends the environments)
and invokes it with the GET /health event, in alternating order so that machine load hits both
alike; the ratio compiled / plain of each round's Init Duration is the figure that counts, not
the milliseconds. The summary is printed as JSON; figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from buildtools.compile_bytecode import BytecodeError, check_folder, code_folders, compile_folder
from localstage.stage import LocalStage, StageConfig
from localstage.vanta_data import Dataset
from locate import REPO

API: Final = "ApiFunction"
EVENT: Final = REPO / "events" / "api_get_health.json"
VARIANTS: Final = ("compiled", "plain")


def _prepare(build_dir: Path, scratch: Path) -> dict[str, Path]:
    """The two copies of the build: compiled as `make build` does, plain as `sam build` leaves."""
    copies = {}
    for variant in VARIANTS:
        copy = scratch / variant
        shutil.copytree(build_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
        if variant == "compiled":
            for folder in code_folders(copy):
                compile_folder(folder)
        if not all(check_folder(f).ok == (variant == "compiled") for f in code_folders(copy)):
            raise BytecodeError(f"{copy}: the {variant} copy's bytecode is not as intended")
        copies[variant] = copy
    return copies


def _stage(template: Path, variant: str) -> LocalStage:
    return LocalStage(
        StageConfig.ephemeral(
            template=template,
            stack_name=f"bench-bytecode-{variant}",
            dataset=Dataset(seed=3, vulnerability_count=20, now=datetime.now(UTC)),
            writable_code=False,
        )
    )


def _cold_start(stage: LocalStage, round_no: int, payload: bytes) -> dict[str, float]:
    """One forced cold start of the API function: its Init Duration, Duration and round trip."""
    runtime = stage.runtime
    if runtime is None:
        raise RuntimeError("the stage is not running")
    spec = runtime.function(API)
    runtime.update_environment(API, {**spec.environment, "BENCH_ROUND": str(round_no)})
    started = time.perf_counter()
    result = runtime.invoke(API, payload, log_tail=True)
    round_trip_ms = (time.perf_counter() - started) * 1000
    if result.function_error or not result.cold or result.report.init_duration_ms is None:
        tail = (result.log_tail or b"").decode(errors="replace")
        raise RuntimeError(f"round {round_no}: not a clean cold start of {API}:\n{tail}")
    return {
        "init_ms": result.report.init_duration_ms,
        "duration_ms": result.report.duration_ms,
        "round_trip_ms": round_trip_ms,
    }


def _summary(series: dict[str, list[dict[str, float]]], modules: int) -> dict[str, Any]:
    def median(variant: str, key: str) -> float:
        return round(statistics.median(run[key] for run in series[variant]), 1)

    pairs = zip(series["compiled"], series["plain"], strict=True)
    ratios = [compiled["init_ms"] / plain["init_ms"] for compiled, plain in pairs]
    return {
        "function": API,
        "rounds": len(ratios),
        "modules_with_bytecode": modules,
        "init_ms_median": {v: median(v, "init_ms") for v in VARIANTS},
        "init_ms_p90": {
            v: round(statistics.quantiles([r["init_ms"] for r in series[v]], n=10)[-1], 1)
            for v in VARIANTS
        },
        "round_trip_ms_median": {v: median(v, "round_trip_ms") for v in VARIANTS},
        "handler_ms_median": {v: median(v, "duration_ms") for v in VARIANTS},
        "init_ratio_compiled_over_plain": {
            "median": round(statistics.median(ratios), 3),
            "min": round(min(ratios), 3),
            "max": round(max(ratios), 3),
        },
        "rounds_where_compiled_was_faster": sum(r < 1 for r in ratios),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--build-dir", type=Path, default=REPO / ".aws-sam" / "build")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    payload = EVENT.read_bytes()
    with tempfile.TemporaryDirectory(prefix="bench-bytecode-") as name:
        try:
            copies = _prepare(args.build_dir, Path(name))
        except BytecodeError as exc:
            print(f"bench_bytecode: {exc}", file=sys.stderr)
            return 2
        modules = sum(check_folder(f).sources for f in code_folders(copies["compiled"]))
        series: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        with (
            _stage(copies["compiled"] / "template.yaml", "compiled") as compiled,
            _stage(copies["plain"] / "template.yaml", "plain") as plain,
        ):
            stages = {"compiled": compiled, "plain": plain}
            for round_no in range(args.rounds):
                order = VARIANTS if round_no % 2 == 0 else VARIANTS[::-1]
                for variant in order:
                    series[variant].append(_cold_start(stages[variant], round_no, payload))
                print(f"round {round_no + 1}/{args.rounds}", file=sys.stderr, flush=True)
    json.dump(_summary(series, modules), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
