"""What CloudWatch Logs does with the functions' lines on the local stage.

Three things: EMF lines become CloudWatch metrics and REPORT lines Lambda's Invocations and
Errors (put into the emulator, so the dashboard's metrics and ``performance_test.py metrics`` read
them as on AWS); and the lines of a subscribed log group
that pass its filter are delivered to the destination function as CloudWatch Logs does: in
batches, asynchronously, as the ``awslogs`` event (base64 of gzip of JSON).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from lambdakit.emf import EmfError, looks_like_emf, parse_emf

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from localstage.spec import StackSpec
    from localstage.worker import LogLine, LogSink

__all__ = ["LogPipeline", "awslogs_event", "matches_emf_filter", "subscriptions_of"]

logger = logging.getLogger(__name__)
# CloudWatch PutMetricData takes at most 1,000 metric data entries per call.
_PUT_BATCH: Final = 1000


def matches_emf_filter(line: str) -> bool:
    """What the template's subscription filter pattern keeps: the functions' EMF lines."""
    return looks_like_emf(line)


def awslogs_event(
    log_group: str,
    messages: Sequence[str],
    *,
    log_stream: str = "local/[$LATEST]stage",
    filter_name: str = "emf",
    owner: str = "123456789012",
    timestamps_ms: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The event Lambda receives from a subscription: ``awslogs.data`` is base64 of gzip of JSON.

    The JSON's shape is CloudWatch Logs' (User Guide, "Using CloudWatch Logs subscription
    filters"): messageType DATA_MESSAGE, owner, logGroup, logStream, subscriptionFilters and
    logEvents of id, timestamp (epoch ms) and message.
    """
    stamps = list(timestamps_ms) if timestamps_ms is not None else [0] * len(messages)
    body = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": [filter_name],
        "logEvents": [
            {"id": uuid.uuid4().hex, "timestamp": stamp, "message": message}
            for stamp, message in zip(stamps, messages, strict=True)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()
    return {"awslogs": {"data": data}}


def subscriptions_of(
    template: Mapping[str, Any], stack: StackSpec
) -> tuple[dict[str, str], str | None]:
    """({function name: its log group's name} for subscribed groups, the destination function).

    Read from the template's ``AWS::Logs::SubscriptionFilter`` resources; a filter whose
    destination function the stage does not run (its condition is off) subscribes nothing.
    """
    resources = template.get("Resources", {})
    subscribed: dict[str, str] = {}
    destination_name: str | None = None
    for resource in resources.values():
        if resource.get("Type") != "AWS::Logs::SubscriptionFilter":
            continue
        props = resource.get("Properties", {})
        target = props.get("DestinationArn", {}).get("Fn::GetAtt", [None])
        target_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
        destination = stack.functions.get(str(target_id))
        group_id = props.get("LogGroupName", {}).get("Ref")
        if destination is None or group_id is None:
            continue
        destination_name = destination.function_name
        for logical_id, spec in stack.functions.items():
            config = resources.get(logical_id, {}).get("Properties", {}).get("LoggingConfig", {})
            if config.get("LogGroup") == {"Ref": group_id}:
                name = resources[group_id]["Properties"]["LogGroupName"]
                text = name.get("Fn::Sub", "") if isinstance(name, dict) else str(name)
                subscribed[spec.function_name] = text.replace("${AWS::StackName}", stack.stack_name)
    return subscribed, destination_name


class LogPipeline:
    """A log sink: passes every line on, turns EMF lines into metrics, feeds subscriptions.

    Work is done by ``flush`` (a background thread calls it every ``interval_s``; tests call it
    to have everything delivered now), never in the sink call itself, so a worker's log reading
    is not slowed by the emulator.
    """

    def __init__(
        self,
        *,
        downstream: LogSink | None,
        cloudwatch: Any,
        subscriptions: Mapping[str, str] | None = None,
        deliver: Callable[[dict[str, Any]], object] | None = None,
        interval_s: float = 0.5,
    ) -> None:
        """``cloudwatch``: the emulator's CloudWatch client; ``deliver``: invoke the destination."""
        self._downstream = downstream
        self._cloudwatch = cloudwatch
        self.subscriptions = dict(subscriptions or {})
        self.deliver = deliver
        self._interval = interval_s
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._metrics: list[str] = []
        self._reports: list[tuple[str, str]] = []
        self._subscribed: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.metric_points = 0
        self.malformed = 0
        self.deliveries = 0

    def __call__(self, record: LogLine) -> None:
        """Receive one line a function printed."""
        if self._downstream is not None:
            self._downstream(record)
        function, line = record.function, record.text
        if line.startswith("REPORT "):
            with self._lock:
                self._reports.append((function, line))
            return
        if not matches_emf_filter(line):
            return
        with self._lock:
            self._metrics.append(line)
            if function in self.subscriptions:
                self._subscribed[function].append((time.time_ns() // 1_000_000, line))

    def start(self) -> None:
        """Flush in the background until ``stop``."""
        self._thread = threading.Thread(target=self._run, name="log-pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background flushes, then flush what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:
                # Logged with its traceback, not hidden: the stage keeps serving its functions
                # while the emulator or the destination misbehaves, and the next flush goes on.
                logger.exception("log pipeline flush failed")

    def flush(self) -> None:
        """Put pending EMF lines into CloudWatch; deliver pending subscription batches."""
        with self._flush_lock:
            with self._lock:
                metrics, self._metrics = self._metrics, []
                reports, self._reports = self._reports, []
                batches, self._subscribed = self._subscribed, defaultdict(list)
            self._put_metrics(metrics)
            self._put_invocations(reports)
            if self.deliver is None:
                return
            for function, entries in batches.items():
                event = awslogs_event(
                    self.subscriptions[function],
                    [line for _, line in entries],
                    timestamps_ms=[stamp for stamp, _ in entries],
                )
                self.deliver(event)
                self.deliveries += 1

    def _put_invocations(self, reports: list[tuple[str, str]]) -> None:
        """AWS/Lambda Invocations and Errors per function, as Lambda publishes them.

        Not Duration: the emulator cannot answer percentile statistics (p50, p99) over data it
        holds, and `performance_test.py metrics` asks for them in the same call.
        """
        data = []
        now = datetime.now(UTC)
        for function, line in reports:
            failed = "\tStatus: " in line  # "error" or "timeout"
            for name, value in (("Invocations", 1.0), ("Errors", 1.0 if failed else 0.0)):
                data.append(
                    {
                        "MetricName": name,
                        "Dimensions": [{"Name": "FunctionName", "Value": function}],
                        "Timestamp": now,
                        "Value": value,
                        "Unit": "Count",
                    }
                )
        for start in range(0, len(data), _PUT_BATCH):
            self._cloudwatch.put_metric_data(
                Namespace="AWS/Lambda", MetricData=data[start : start + _PUT_BATCH]
            )

    def _put_metrics(self, lines: list[str]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in lines:
            try:
                points = parse_emf(line)
            except EmfError as exc:
                self.malformed += 1
                logger.warning("malformed EMF line not turned into metrics: %s", exc)
                continue
            for point in points:
                by_namespace[point.namespace].append(
                    {
                        "MetricName": point.name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in point.dimensions],
                        "Timestamp": datetime.fromtimestamp(point.timestamp_ms / 1000, UTC),
                        "Value": point.value,
                        "Unit": point.unit,
                    }
                )
        for namespace, data in by_namespace.items():
            for start in range(0, len(data), _PUT_BATCH):
                self._cloudwatch.put_metric_data(
                    Namespace=namespace, MetricData=data[start : start + _PUT_BATCH]
                )
            self.metric_points += len(data)
