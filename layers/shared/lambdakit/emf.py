"""Read CloudWatch Embedded Metric Format (EMF) log lines back into metric points."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

from lambdakit.errors import LambdaKitError

__all__ = ["EmfError", "MetricPoint", "looks_like_emf", "parse_emf"]

# The EMF specification (CloudWatch User Guide, "Embedded metric format specification") puts the
# metadata under "_aws": Timestamp (epoch ms) and CloudWatchMetrics, a list of directives with a
# Namespace, Dimensions (lists of key names, values at the root) and Metrics (Name, Unit). A
# metric's value sits at the root under its name: a number or a list of numbers.
_MARKER: Final = '"_aws"'


class EmfError(LambdaKitError):
    """A line that claims to be EMF but is not valid EMF; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of one metric, as CloudWatch extracts it from an EMF line."""

    namespace: str
    name: str
    unit: str
    value: float
    timestamp_ms: int
    dimensions: tuple[tuple[str, str], ...]  # (name, value) in the directive's order


def looks_like_emf(line: str) -> bool:
    """Whether ``line`` claims to be EMF (a JSON object with ``_aws``): cheap, no parsing."""
    stripped = line.lstrip()
    return stripped.startswith("{") and _MARKER in stripped


def parse_emf(line: str) -> list[MetricPoint]:
    """Every metric point of one EMF line; raises ``EmfError`` naming what is malformed."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise EmfError(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise EmfError("not a JSON object")
    meta = record.get("_aws")
    if not isinstance(meta, dict):
        raise EmfError("_aws is not an object")
    timestamp = meta.get("Timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise EmfError("_aws.Timestamp is not an integer (epoch milliseconds)")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        raise EmfError("_aws.CloudWatchMetrics is not a non-empty list")
    points: list[MetricPoint] = []
    for index, directive in enumerate(directives):
        points.extend(
            _directive_points(record, directive, timestamp, f"CloudWatchMetrics[{index}]")
        )
    return points


def _directive_points(
    record: dict[str, Any], directive: Any, timestamp: int, where: str
) -> list[MetricPoint]:
    if not isinstance(directive, dict):
        raise EmfError(f"{where} is not an object")
    namespace = directive.get("Namespace")
    if not isinstance(namespace, str) or not namespace:
        raise EmfError(f"{where}.Namespace is missing")
    dimension_sets = directive.get("Dimensions", [[]])
    if not isinstance(dimension_sets, list) or not all(
        isinstance(keys, list) and all(isinstance(k, str) for k in keys) for keys in dimension_sets
    ):
        raise EmfError(f"{where}.Dimensions is not a list of lists of names")
    metrics = directive.get("Metrics")
    if not isinstance(metrics, list):
        raise EmfError(f"{where}.Metrics is not a list")
    points: list[MetricPoint] = []
    for keys in dimension_sets or [[]]:
        dimensions = []
        for key in keys:
            value = record.get(key)
            if not isinstance(value, str):
                raise EmfError(f"dimension {key!r} has no string value")
            dimensions.append((key, value))
        for metric in metrics:
            if not isinstance(metric, dict) or not isinstance(metric.get("Name"), str):
                raise EmfError(f"{where}.Metrics holds an entry without a Name")
            name = metric["Name"]
            unit = metric.get("Unit", "None")
            for value in _values(record.get(name), name):
                points.append(
                    MetricPoint(namespace, name, str(unit), value, timestamp, tuple(dimensions))
                )
    return points


def _values(raw: Any, name: str) -> list[float]:
    values = raw if isinstance(raw, list) else [raw]
    numbers: list[float] = []
    for value in values:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise EmfError(f"metric {name!r} has a value that is not a finite number")
        numbers.append(float(value))
    return numbers
