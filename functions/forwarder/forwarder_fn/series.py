"""CloudWatch Logs subscription events in, Datadog metric series (API v2) out."""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from lambdakit.emf import EmfError, MetricPoint, looks_like_emf, parse_emf

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

__all__ = [
    "MAX_FUTURE_S",
    "MAX_PAST_S",
    "MAX_PAYLOAD_BYTES",
    "AwslogsError",
    "Extracted",
    "LogBatch",
    "decode_awslogs",
    "extract_points",
    "payloads",
    "points_in",
    "series_of",
]

# Datadog's metrics API v2 (POST /api/v2/series, "Submit metrics" in its API reference): a point's
# timestamp may be at most one hour in the past and ten minutes in the future; an uncompressed
# payload at most 500 kilobytes (512,000 bytes). Metric types: 0 unspecified, 1 count, 2 rate,
# 3 gauge.
MAX_PAST_S: Final = 3600
MAX_FUTURE_S: Final = 600
MAX_PAYLOAD_BYTES: Final = 512_000
_COUNT: Final = 1
_GAUGE: Final = 3
# CloudWatch units that add up over time; everything else (durations, bytes) is a gauge.
_COUNT_UNITS: Final = frozenset({"Count"})
# CloudWatch unit -> Datadog unit name (Datadog's unit list); others are sent without a unit.
_UNITS: Final = {
    "Seconds": "second",
    "Milliseconds": "millisecond",
    "Microseconds": "microsecond",
    "Bytes": "byte",
    "Kilobytes": "kibibyte",
    "Megabytes": "mebibyte",
    "Percent": "percent",
}


class AwslogsError(ValueError):
    """The event is not a CloudWatch Logs subscription event; the message says why."""


@dataclass(frozen=True, slots=True)
class LogBatch:
    """The decoded ``awslogs.data`` of one subscription delivery."""

    log_group: str
    log_stream: str
    messages: tuple[str, ...]


@dataclass(slots=True)
class Extracted:
    """The points of a batch's EMF lines, and the lines that claimed EMF but were malformed."""

    points: list[MetricPoint] = field(default_factory=list)
    malformed: int = 0
    reasons: list[str] = field(default_factory=list)  # the first few, for one log line


def decode_awslogs(event: Mapping[str, Any]) -> LogBatch | None:
    """The log batch of a subscription event (base64 of gzip of JSON); None for a control message.

    CloudWatch Logs sends one CONTROL_MESSAGE when a subscription is created, to check the
    destination is reachable: it carries no log events.
    """
    data = event.get("awslogs", {}).get("data") if isinstance(event.get("awslogs"), dict) else None
    if not isinstance(data, str):
        raise AwslogsError("event has no awslogs.data string (not a CloudWatch Logs subscription)")
    try:
        body = json.loads(gzip.decompress(base64.b64decode(data, validate=True)))
    except (binascii.Error, OSError, EOFError, zlib.error, ValueError) as exc:
        raise AwslogsError(f"awslogs.data is not base64 of gzip of JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AwslogsError("awslogs.data holds no JSON object")
    if body.get("messageType") == "CONTROL_MESSAGE":
        return None
    events = body.get("logEvents")
    if body.get("messageType") != "DATA_MESSAGE" or not isinstance(events, list):
        raise AwslogsError("awslogs.data is not a DATA_MESSAGE with logEvents")
    messages = tuple(str(e["message"]) for e in events if isinstance(e, dict) and "message" in e)
    return LogBatch(str(body.get("logGroup", "")), str(body.get("logStream", "")), messages)


def extract_points(messages: Iterable[str]) -> Extracted:
    """Points of every EMF line; a malformed one is counted (and its reason kept), never raised."""
    found = Extracted()
    for message in messages:
        if not looks_like_emf(message):
            continue
        try:
            found.points.extend(parse_emf(message))
        except EmfError as exc:
            found.malformed += 1
            if len(found.reasons) < 3:
                found.reasons.append(str(exc))
    return found


def series_of(
    points: Iterable[MetricPoint], *, prefix: str, tags: tuple[str, ...], now: float
) -> tuple[list[dict[str, Any]], int]:
    """Datadog series of the points Datadog still accepts, and how many were too late or early.

    One series per metric and dimension set; each dimension becomes a ``name:value`` tag next
    to ``tags`` (the namespace is one of them).
    """
    grouped: dict[tuple[str, str, tuple[tuple[str, str], ...], str], list[dict[str, Any]]] = {}
    out_of_window = 0
    for point in points:
        seconds = point.timestamp_ms // 1000
        if seconds < now - MAX_PAST_S or seconds > now + MAX_FUTURE_S:
            out_of_window += 1
            continue
        key = (point.namespace, point.name, point.dimensions, point.unit)
        grouped.setdefault(key, []).append({"timestamp": seconds, "value": point.value})
    series = []
    for (namespace, name, dimensions, unit), values in grouped.items():
        entry: dict[str, Any] = {
            "metric": f"{prefix}.{name}" if prefix else name,
            "type": _COUNT if unit in _COUNT_UNITS else _GAUGE,
            "points": values,
            "tags": [*tags, f"namespace:{namespace}", *(f"{k}:{v}" for k, v in dimensions)],
        }
        if unit in _UNITS:
            entry["unit"] = _UNITS[unit]
        series.append(entry)
    return series, out_of_window


def payloads(series: list[dict[str, Any]], *, limit: int = MAX_PAYLOAD_BYTES) -> Iterator[bytes]:
    """``{"series": [...]}`` bodies, each at most ``limit`` bytes (a series is never split)."""
    batch: list[str] = []
    size = len(b'{"series":[]}')
    for entry in series:
        text = json.dumps(entry, separators=(",", ":"))
        grown = size + len(text) + (1 if batch else 0)
        if batch and grown > limit:
            yield _body(batch)
            batch, grown = [], len(b'{"series":[]}') + len(text)
        batch.append(text)
        size = grown
    if batch:
        yield _body(batch)


def _body(entries: list[str]) -> bytes:
    return ('{"series":[' + ",".join(entries) + "]}").encode()


def points_in(payload: bytes) -> int:
    """How many points a payload carries (for the sent and dropped counts)."""
    return sum(len(s["points"]) for s in json.loads(payload)["series"])
