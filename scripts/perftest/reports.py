"""The report in three forms: JSON (schema in docs/perf-report.schema.json), HTML, a table."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any, Final

from perftest.charts import histogram, line_chart

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SCHEMA_VERSION", "render_html", "terminal_table", "write_reports"]

SCHEMA_VERSION: Final = 1
# (mode, series key, label) of the rows the table and the HTML summary show.
_ROWS: Final = (
    ("cold", "cold_start_ms", "cold start = init + handler (ms)"),
    ("cold", "init_ms", "  init (ms)"),
    ("cold", "restore_ms", "  restore, SnapStart (ms)"),
    ("cold", "handler_ms", "  handler on a cold start (ms)"),
    ("cold", "round_trip_ms", "  cold client round trip (ms)"),
    ("warm", "handler_ms", "warm handler (ms)"),
    ("warm", "round_trip_ms", "warm client round trip (ms)"),
    ("warm", "max_memory_used_mb", "warm max memory used (MB)"),
    ("concurrent", "round_trip_ms", "concurrent round trip (ms)"),
    ("concurrent", "cold_start_ms", "  concurrent cold starts (ms)"),
)
_FIGURES: Final = ("count", "min", "p50", "p90", "p99", "max", "mean", "stdev")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}"


def _rows(function: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for mode, key, label in _ROWS:
        block = function.get(mode)
        if not block:
            continue
        summary = block["series"].get(key)
        if summary is None or summary["count"] == 0:
            continue
        rows.append((label, summary))
    for point in function.get("sweep") or []:
        size = point["memory_mb"]
        rows.append((f"cold start @ {size} MB (ms)", point["cold"]["series"]["cold_start_ms"]))
        rows.append((f"warm handler @ {size} MB (ms)", point["warm"]["series"]["handler_ms"]))
    return rows


def _counts_line(function: dict[str, Any]) -> str:
    parts = []
    cold, warm, burst = function.get("cold"), function.get("warm"), function.get("concurrent")
    if cold:
        parts.append(
            f"cold {cold['measured']}/{cold['requested']} measured"
            f" ({cold['not_cold']} not cold, failed {cold['failed'] or 0})"
        )
    if warm:
        parts.append(
            f"warm {warm['measured']}/{warm['requested']} measured"
            f" ({warm['unexpected_cold']} cold, failed {warm['failed'] or 0})"
        )
    if burst:
        share = burst["cold_share"]
        parts.append(
            f"concurrent x{burst['concurrency']}: {burst['succeeded']}/{burst['attempted']} ok, "
            f"{burst['cold']} cold ({'-' if share is None else f'{share:.1%}'}), "
            f"{burst['throttled']} throttled, {burst['errors']} errors"
        )
    cost = function.get("cost") or {}
    if cost.get("warm_per_million_usd") is not None:
        parts.append(f"${cost['warm_per_million_usd']:.2f} per million warm invocations")
    return "; ".join(parts)


def terminal_table(report: dict[str, Any]) -> str:
    """A concise fixed-width table of every function's series, with the counts beneath."""
    header = f"{'series':<34}" + "".join(f"{f:>9}" for f in _FIGURES)
    lines: list[str] = []
    for function in report["functions"]:
        rows = _rows(function)
        lines += ["", f"{function['label']}  (payload {function['payload']})"]
        lines += [header] if rows else []
        lines += [
            f"{label:<34}" + "".join(f"{_cell(summary[f]):>9}" for f in _FIGURES)
            for label, summary in rows
        ]
        counts = _counts_line(function)
        if counts:
            lines.append(counts)
        metrics = function.get("metrics")
        if metrics:
            window = metrics["window"]
            lines.append(f"metrics {window['start']}..{window['end']}: {metrics['message']}")
        for point in function.get("sweep") or []:
            cold, warm = point["cold"], point["warm"]
            cost = point["cost_per_million_usd"]
            lines.append(
                f"{point['memory_mb']} MB: cold {cold['measured']}/{cold['requested']}, "
                f"warm {warm['measured']}/{warm['requested']} measured; "
                f"{'-' if cost is None else f'${cost:.2f}'} per million warm invocations"
            )
    return "\n".join(lines).lstrip("\n")


_STYLE: Final = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #eaeef2}
th{text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.chart{margin:8px 12px 8px 0;background:#f6f8fa;border-radius:6px}
.chart .bar{fill:#1f6feb}.chart .tail{fill:#d1242f}
.chart .axis{stroke:#57606a}.chart .t{font-size:13px;font-weight:600}
.chart .l{font-size:11px;fill:#57606a}.note{color:#57606a}code{font-size:12px}
"""


def _table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    e = html.escape
    head = "<tr><th>series</th>" + "".join(f"<th>{f}</th>" for f in _FIGURES) + "</tr>"
    body = "".join(
        f"<tr><td>{e(label.strip())}</td>"
        + "".join(f'<td class="n">{_cell(s[f])}</td>' for f in _FIGURES)
        + "</tr>"
        for label, s in rows
    )
    return f"<table>{head}{body}</table>"


def _values(block: dict[str, Any] | None, key: str, *, cold: bool) -> list[float]:
    if not block:
        return []
    out = []
    for s in block["samples"]:
        if s["status"] != "ok" or s["cold"] is not cold:
            continue
        if key == "cold_start_ms":
            out.append(
                (s["init_duration_ms"] or 0.0)
                + (s["restore_duration_ms"] or 0.0)
                + s["duration_ms"]
            )
        else:
            out.append(s[key])
    return out


def _function_html(function: dict[str, Any]) -> str:
    e = html.escape
    config = function["configuration"]
    parts = [
        f"<h2>{e(function['label'])}</h2>",
        f'<p class="note">{e(function["function"])}, payload <code>{e(function["payload"])}</code>'
        f", {config['memory_mb']} MB, {e(config['architecture'])}</p>",
        _table(_rows(function)),
        f"<p>{e(_counts_line(function))}</p>",
    ]
    cold = _values(function.get("cold"), "cold_start_ms", cold=True)
    warm = _values(function.get("warm"), "duration_ms", cold=False)
    if function.get("cold"):
        parts.append(histogram(cold, title="Cold start: init + handler", unit="ms"))
    if function.get("warm"):
        parts.append(histogram(warm, title="Warm handler duration", unit="ms"))
    burst = function.get("concurrent")
    if burst:
        trips = [s["round_trip_ms"] for s in burst["samples"] if s["status"] == "ok"]
        parts.append(histogram(trips, title="Concurrent round trip", unit="ms"))
    metrics = function.get("metrics")
    if metrics:
        rows = "".join(
            f"<tr><td>{e(k)}</td><td class='n'>{_cell(v)}</td></tr>"
            for k, v in metrics["values"].items()
        )
        parts.append(
            f"<h3>CloudWatch {e(metrics['window']['start'])} to {e(metrics['window']['end'])}</h3>"
            f"<p>{e(metrics['message'])}</p><table>{rows}</table>"
        )
    sweep = function.get("sweep")
    for point in sweep or []:
        size = point["memory_mb"]
        parts.append(
            histogram(
                _values(point["cold"], "cold_start_ms", cold=True),
                title=f"Cold start at {size} MB",
                unit="ms",
            )
        )
        parts.append(
            histogram(
                _values(point["warm"], "duration_ms", cold=False),
                title=f"Warm handler at {size} MB",
                unit="ms",
            )
        )
    if sweep:
        xs = [float(p["memory_mb"]) for p in sweep]
        for mode, key, name in (
            ("cold", "cold_start_ms", "cold start"),
            ("warm", "handler_ms", "warm handler"),
        ):
            parts.append(
                line_chart(
                    xs,
                    {
                        f"{name} {q}": [p[mode]["series"][key][q] for p in sweep]
                        for q in ("p50", "p90")
                    },
                    title=f"Memory sweep: {name}",
                    x_label="memory (MB)",
                    y_label="ms",
                )
            )
        parts.append(
            line_chart(
                xs,
                {"warm, per million": [p["cost_per_million_usd"] for p in sweep]},
                title="Memory sweep: cost per million invocations",
                x_label="memory (MB)",
                y_label="USD",
            )
        )
    return "\n".join(parts)


def _machine(env: dict[str, Any]) -> str:
    load = env.get("load_average")
    loads = " ".join(f"{x:.2f}" for x in load) if load else "unknown"
    return (
        f"Python {env['python']}, {env['platform']}, {env['cpus']} CPUs, "
        f"load average {loads} (1, 5, 15 min) at the end of the run"
    )


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: inline CSS and SVG, no script, nothing fetched from anywhere."""
    e = html.escape
    target = report["target"]
    settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items() if v is not None)
    notes = "".join(f"<li>{e(n)}</li>" for n in report["notes"])
    body = "\n".join(_function_html(f) for f in report["functions"])
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Performance report {e(report['started_at'])}</title><style>{_STYLE}</style>"
        "</head><body>"
        f"<h1>Performance report: {e(report['mode'])}</h1>"
        f"<p>{e(target['kind'])} target"
        f"{' ' + e(target['stack_name']) if target.get('stack_name') else ''}, region "
        f"{e(str(target['region']))}; {e(report['started_at'])} to "
        f"{e(report['finished_at'])} (UTC)</p>"
        f'<p class="note">settings: {e(settings)}</p>'
        f'<p class="note">machine: {e(_machine(report["environment"]))}</p>'
        f"{body}<h2>Notes</h2><ul>{notes}</ul></body></html>\n"
    )


def write_reports(report: dict[str, Any], folder: Path, stem: str) -> tuple[Path, Path]:
    """Write <stem>.json and <stem>.html into ``folder`` (created); return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / f"{stem}.json", folder / f"{stem}.html"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    html_path.write_text(render_html(report))
    return json_path, html_path
