"""The REPORT (and INIT_REPORT) platform lines Lambda writes at the end of an invocation.

One format, one module: the local runtime writes these lines (ReportLine.render) and every tool
and test reads them (ReportLine.parse, parse_log_tail), on the local stage and on AWS alike.

Lambda prints them tab separated, usually with a trailing tab::

    REPORT RequestId: 8f5...\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 1024 MB\t
    Max Memory Used: 88 MB\tInit Duration: 245.67 ms\t

plus ``Restore Duration`` / ``Billed Restore Duration`` on a SnapStart restore (no Init Duration
then), ``Status: timeout`` or ``Status: error`` with ``Error Type`` when the invocation did not
complete, and ``XRAY TraceId ...`` when tracing is on. Consoles and `aws logs tail` sometimes
show the tabs as spaces; both are read. An init that failed and was retried in the invoke phase
is reported on its own ``INIT_REPORT`` line, kept here beside the REPORT fields.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["InitReport", "ReportLine", "ReportParseError", "parse_log_tail", "parse_report"]

# Longest labels first, so "Billed Restore Duration" never reads as "Restore Duration".
_LABELS: Final = (
    "Billed Restore Duration",
    "Restore Duration",
    "Billed Duration",
    "Init Duration",
    "Max Memory Used",
    "Memory Size",
    "Duration",
    "RequestId",
    "Error Type",
    "Status",
    "Phase",
    "XRAY TraceId",
    "SegmentId",
    "Sampled",
)
_LABEL: Final = re.compile(r"(?:(?<=\s)|^)(" + "|".join(re.escape(x) for x in _LABELS) + r"): ")
_NUMBER: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|MB)?$")


class ReportParseError(ValueError):
    """The text holds no REPORT line, or one missing a field Lambda always prints."""


@dataclass(frozen=True, slots=True)
class InitReport:
    """An INIT_REPORT line: the init phase reported apart (SnapStart, or an init that failed)."""

    init_duration_ms: float
    phase: str | None = None
    status: str | None = None
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class ReportLine:
    """The fields of one REPORT line; durations in ms, memory in MB."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    restore_duration_ms: float | None = None
    billed_restore_duration_ms: int | None = None
    status: str | None = None  # "timeout" or "error" when the invocation did not complete
    error_type: str | None = None
    init_report: InitReport | None = None

    @property
    def cold(self) -> bool:
        """Whether this invocation started a new execution environment (init or restore)."""
        return self.init_duration_ms is not None or self.restore_duration_ms is not None

    @property
    def startup_ms(self) -> float:
        """Time before the handler ran: Init Duration, or Restore Duration for SnapStart; 0 warm."""
        return (self.init_duration_ms or 0.0) + (self.restore_duration_ms or 0.0)

    @property
    def completed(self) -> bool:
        """False when Lambda reported a timeout or a runtime error on the REPORT line."""
        return self.status is None

    def render(self) -> str:
        """The line exactly as Lambda writes it (tab separated, trailing tab, no newline)."""
        parts = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {self.billed_duration_ms} ms",
            f"Memory Size: {self.memory_size_mb} MB",
            f"Max Memory Used: {self.max_memory_used_mb} MB",
        ]
        if self.init_duration_ms is not None:
            parts.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.restore_duration_ms is not None:
            parts.append(f"Restore Duration: {self.restore_duration_ms:.2f} ms")
        if self.billed_restore_duration_ms is not None:
            parts.append(f"Billed Restore Duration: {self.billed_restore_duration_ms} ms")
        if self.status is not None:
            parts.append(f"Status: {self.status}")
        if self.error_type is not None:
            parts.append(f"Error Type: {self.error_type}")
        return "\t".join(parts) + "\t"

    @classmethod
    def parse(cls, text: str) -> ReportLine:
        """The last REPORT of a text (one line or a whole log tail); ReportParseError if none."""
        return parse_log_tail(text)

    @staticmethod
    def billed(duration_ms: float) -> int:
        """Billed duration: rounded up to the next millisecond, at least 1 ms."""
        return max(1, math.ceil(duration_ms))


def _fields(line: str) -> dict[str, str]:
    matches = list(_LABEL.finditer(line))
    fields: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
        fields.setdefault(match.group(1), line[match.end() : end].strip())
    return fields


def _number(fields: dict[str, str], key: str, unit: str) -> float | None:
    raw = fields.get(key)
    if raw is None:
        return None
    match = _NUMBER.match(raw)
    if match is None or (match.group(2) not in (None, unit)):
        raise ReportParseError(f"REPORT field {key!r} is not a number of {unit}: {raw!r}")
    return float(match.group(1))


def _required(fields: dict[str, str], key: str, unit: str) -> float:
    value = _number(fields, key, unit)
    if value is None:
        raise ReportParseError(f"REPORT line has no {key!r} field")
    return value


def _word(fields: dict[str, str], key: str) -> str | None:
    raw = fields.get(key)
    return raw.split()[0] if raw else None


def _optional_int(value: float | None) -> int | None:
    return None if value is None else round(value)


def parse_report(line: str, init_report: InitReport | None = None) -> ReportLine:
    """Parse one REPORT line (with or without its ``REPORT`` prefix)."""
    text = line.strip()
    start = text.find("REPORT RequestId:")
    if start > 0:  # a timestamp or log stream name in front, as `aws logs tail` prints
        text = text[start:]
    fields = _fields(text)
    request_id = _word(fields, "RequestId")
    if request_id is None:
        raise ReportParseError(f"not a REPORT line: {line[:120]!r}")
    return ReportLine(
        request_id=request_id,
        duration_ms=_required(fields, "Duration", "ms"),
        billed_duration_ms=round(_required(fields, "Billed Duration", "ms")),
        memory_size_mb=round(_required(fields, "Memory Size", "MB")),
        max_memory_used_mb=round(_required(fields, "Max Memory Used", "MB")),
        init_duration_ms=_number(fields, "Init Duration", "ms"),
        restore_duration_ms=_number(fields, "Restore Duration", "ms"),
        billed_restore_duration_ms=_optional_int(_number(fields, "Billed Restore Duration", "ms")),
        status=_word(fields, "Status"),
        error_type=_word(fields, "Error Type"),
        init_report=init_report,
    )


def _parse_init_report(line: str) -> InitReport:
    fields = _fields(line[line.find("INIT_REPORT") + len("INIT_REPORT") :])
    return InitReport(
        init_duration_ms=_required(fields, "Init Duration", "ms"),
        phase=_word(fields, "Phase"),
        status=_word(fields, "Status"),
        error_type=_word(fields, "Error Type"),
    )


def parse_log_tail(log: str, request_id: str | None = None) -> ReportLine:
    """The REPORT of a log tail (LogType=Tail): the one of ``request_id``, else the last one.

    The INIT_REPORT line printed before it, if any, is attached to it.
    """
    init: InitReport | None = None
    found: ReportLine | None = None
    for raw in log.splitlines():
        if "INIT_REPORT " in raw and "Init Duration:" in raw:
            init = _parse_init_report(raw)
        elif "REPORT RequestId:" in raw:
            report = parse_report(raw, init)
            init = None
            if request_id is None or report.request_id == request_id:
                found = report
    if found is None:
        wanted = f" for request {request_id}" if request_id else ""
        raise ReportParseError(f"no REPORT line{wanted} in the log tail")
    return found
