"""`make perf-check`: ApiFunction's cold start against the floor handler, compared with a baseline.

A private local stage (free ports, small data set, one sync) serves the real ApiFunction; a
second local runtime beside it serves the floor handler (scripts/bench/handlers/bench_floor:
boto3, one DynamoDB client, one GetItem) with ApiFunction's environment, memory and layers.
Both get the same forced cold starts, interleaved round by round, then the same warm series.
Only ratios against that floor are compared with the committed baseline, so a slower or busier
machine moves both sides alike. The check fails when the cold start ratio grows by more than
the margin.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
import statistics
from typing import TYPE_CHECKING, Any, Final

from locate import REPO
from perftest.errors import PerfTestError, UsageError
from perftest.gateway import LambdaGateway
from perftest.modes import cold_result, run_cold, run_warm, warm_result
from perftest.payloads import EVENTS, load_payload
from perftest.restore import ConfigurationGuard
from perftest.targets import Endpoint, Target, aws_clients

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = ["BASELINE", "DEFAULT_MARGIN", "compare", "ratios", "run_check"]

BASELINE: Final = REPO / "docs" / "perf-baseline.json"
DEFAULT_MARGIN: Final = 0.25
GUARDED: Final = "cold_start_paired_median"
FLOOR_CODE: Final = REPO / "scripts" / "bench" / "handlers" / "bench_floor"
_REGION: Final = "us-east-1"


def _p50(block: dict[str, Any], key: str) -> float:
    value = block["series"][key]["p50"]
    if value is None:
        raise PerfTestError(f"no measured {key}: every invocation failed or was not cold/warm")
    return float(value)


def _cold_start(sample: dict[str, Any]) -> float | None:
    if sample["status"] != "ok" or not sample["cold"]:
        return None
    startup = (sample["init_duration_ms"] or 0.0) + (sample["restore_duration_ms"] or 0.0)
    return float(startup + sample["duration_ms"])


def paired_median(ours: dict[str, Any], floor: dict[str, Any]) -> float:
    """Median over rounds of ours / floor cold start, both taken in the same round.

    Each round forces one cold start of each, back to back, so a burst of load on the machine
    hits both sides of one ratio; the median then drops the rounds a burst split unevenly.
    """
    pairs = []
    for mine, theirs in zip(ours["samples"], floor["samples"], strict=True):
        a, b = _cold_start(mine), _cold_start(theirs)
        if a is not None and b:
            pairs.append(a / b)
    if not pairs:
        raise PerfTestError("no round has a cold start of both ApiFunction and the floor")
    return statistics.median(pairs)


def ratios(ours: dict[str, Any], floor: dict[str, Any]) -> dict[str, float]:
    """ApiFunction / floor: paired per-round cold start (guarded), then p50 ratios."""
    cold_o, cold_f, warm_o, warm_f = ours["cold"], floor["cold"], ours["warm"], floor["warm"]
    return {
        "cold_start_paired_median": paired_median(cold_o, cold_f),
        "cold_start_p50": _p50(cold_o, "cold_start_ms") / _p50(cold_f, "cold_start_ms"),
        "init_p50": _p50(cold_o, "init_ms") / _p50(cold_f, "init_ms"),
        "cold_round_trip_p50": _p50(cold_o, "round_trip_ms") / _p50(cold_f, "round_trip_ms"),
        "warm_handler_p50": _p50(warm_o, "handler_ms") / _p50(warm_f, "handler_ms"),
    }


def compare(now: dict[str, float], baseline: dict[str, float], margin: float) -> list[str]:
    """The regressions: the guarded cold start ratio over baseline x (1 + margin)."""
    key = GUARDED
    limit = baseline[key] * (1 + margin)
    if now[key] > limit:
        return [
            f"cold start regressed: ApiFunction / floor ({key}) is {now[key]:.3f}, over the "
            f"limit {limit:.3f} (baseline {baseline[key]:.3f} + {margin:.0%})"
        ]
    return []


def _stage(findings: int) -> Any:
    from localstage.stage import LocalStage, StageConfig  # noqa: PLC0415 - heavy, local only
    from localstage.vanta_data import Dataset  # noqa: PLC0415

    return LocalStage(
        StageConfig.ephemeral(
            stack_name="perf-check",
            dataset=Dataset(
                seed=11,
                vulnerability_count=findings,
                asset_count=max(1, findings // 10),
                remediation_count=findings // 5,
                now=dt.datetime.now(dt.UTC).replace(microsecond=0),
            ),
        )
    )


class _FloorRuntime:
    """The floor handler in its own LocalRuntime and Invoke API, shaped like ApiFunction."""

    def __init__(self, stage: Any) -> None:
        from localstage.aws import aws_environment  # noqa: PLC0415
        from localstage.invoke_api import start_invoke_api  # noqa: PLC0415
        from localstage.runtime import LocalRuntime  # noqa: PLC0415

        api = stage.stack.functions["ApiFunction"]
        floor = dataclasses.replace(
            api,
            logical_id="floor",
            function_name="floor",
            code_dir=FLOOR_CODE,
            handler="bench_floor_fn.handler.handler",
            routes=(),
            schedules=(),
            reserved_concurrency=None,
        )
        self.runtime = LocalRuntime(
            {"floor": floor}, base_env=aws_environment(stage.urls["aws"], _REGION), region=_REGION
        )
        self.server = start_invoke_api(self.runtime, port=0)

    def close(self) -> None:
        self.server.close()
        self.runtime.shutdown()


def _target(label: str, function: str, endpoint_url: str) -> Target:
    endpoint = Endpoint(kind="local", region=_REGION, lambda_endpoint_url=endpoint_url)
    client, _ = aws_clients(endpoint, read_timeout_s=120, pool=4)
    gateway = LambdaGateway(client, waiter_delay_s=1)
    payload = load_payload(EVENTS / "api_get_stats.json", function=label)
    return Target(label, function, None, gateway, payload, gateway.configuration(function))


def _measure(
    rounds: int, count: int, warmup: int, findings: int, say: Callable[[str], None]
) -> Iterator[tuple[Target, dict[str, Any], dict[str, Any]]]:
    from localstage.stage import StageError  # noqa: PLC0415 - heavy, local only

    with _stage(findings) as stage:
        say(f"perf-check: private stage up; syncing {findings} findings (not measured)")
        try:
            stage.first_sync("perf-check")
        except StageError as error:
            raise PerfTestError(str(error)) from None
        floor = _FloorRuntime(stage)
        try:
            targets = [
                _target("ApiFunction", "ApiFunction", stage.urls["invoke"]),
                _target("floor", "floor", floor.server.endpoint_url),
            ]
            with ConfigurationGuard(say) as guard:
                colds = run_cold(targets, rounds, guard, say)
                warms = run_warm(targets, count, warmup, say)
        finally:
            floor.close()
    for target in targets:
        yield (
            target,
            cold_result(colds[target.label], rounds),
            warm_result(warms[target.label], count, warmup),
        )


def run_check(
    *,
    baseline_path: Path,
    write_baseline: bool,
    margin: float | None,
    rounds: int,
    count: int,
    warmup: int,
    findings: int,
    say: Callable[[str], None],
) -> tuple[int, dict[str, Any]]:
    """Measure, then compare with (or write) the baseline; returns (exit status, result)."""
    baseline: dict[str, Any] | None = None
    if not write_baseline:
        try:
            baseline = json.loads(baseline_path.read_text())
        except FileNotFoundError:
            raise UsageError(
                f"no baseline at {baseline_path}: record one with "
                "`performance_test.py check --write-baseline`"
            ) from None
        except ValueError as error:
            raise UsageError(f"{baseline_path} is not JSON: {error}") from None
    measured = {
        t.label: (t, cold, warm) for t, cold, warm in _measure(rounds, count, warmup, findings, say)
    }
    _, ours_cold, ours_warm = measured["ApiFunction"]
    _, floor_cold, floor_warm = measured["floor"]
    now = ratios({"cold": ours_cold, "warm": ours_warm}, {"cold": floor_cold, "warm": floor_warm})
    now = {k: round(v, 4) for k, v in now.items()}  # the figures shown are the ones compared
    absolute = {
        f"{label}_{key}": block["series"][series]["p50"]
        for label, (_, cold, warm) in measured.items()
        for key, block, series in (
            ("cold_start_p50_ms", cold, "cold_start_ms"),
            ("init_p50_ms", cold, "init_ms"),
            ("warm_handler_p50_ms", warm, "handler_ms"),
        )
    }
    counts = {
        label: {"cold_measured": cold["measured"], "warm_measured": warm["measured"]}
        for label, (_, cold, warm) in measured.items()
    }
    result: dict[str, Any] = {
        "kind": "perf-baseline",
        "schema_version": 1,
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": f"scripts/performance_test.py check --cold {rounds} --warm {count}",
        "machine": {"python": platform.python_version(), "machine": platform.machine()},
        "ratios": {k: round(v, 4) for k, v in now.items()},
        "absolute_p50_ms": {k: None if v is None else round(v, 2) for k, v in absolute.items()},
        "counts": counts,
        "margin": margin if margin is not None else DEFAULT_MARGIN,
    }
    if write_baseline:
        baseline_path.write_text(json.dumps(result, indent=2) + "\n")
        result["verdict"] = f"baseline written to {baseline_path}"
        return 0, result
    assert baseline is not None  # noqa: S101 - read above unless writing one
    used_margin = margin if margin is not None else float(baseline.get("margin", DEFAULT_MARGIN))
    problems = compare(now, baseline["ratios"], used_margin)
    result["baseline"] = baseline["ratios"]
    result["margin"] = used_margin
    result["problems"] = problems
    result["verdict"] = "FAIL" if problems else "pass"
    return (1 if problems else 0), result


def check_table(result: dict[str, Any]) -> str:
    """The comparison as a small table for the terminal."""
    lines = [f"{'ratio ApiFunction / floor':<34}{'baseline':>10}{'now':>10}{'limit':>10}"]
    baseline = result.get("baseline") or {}
    for key, value in result["ratios"].items():
        base = baseline.get(key)
        limit = base * (1 + result["margin"]) if base is not None and key == GUARDED else None
        lines.append(
            f"{key:<34}{'-' if base is None else f'{base:.3f}':>10}{value:>10.3f}"
            f"{'-' if limit is None else f'{limit:.3f}':>10}"
        )
    for key, value in result["absolute_p50_ms"].items():
        lines.append(f"  {key:<32}{'':>10}{'-' if value is None else f'{value:.1f}':>10}")
    lines += [*result.get("problems", []), f"perf-check: {result['verdict']}"]
    return "\n".join(lines)
