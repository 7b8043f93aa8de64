"""The stage's console, as `sam local` prints it: function lines by request id, access lines."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

    from localstage.worker import LogLine

__all__ = ["Console"]

# Pings of one warming tick arrive within a moment of each other; they print as one line this
# long after the last one finished.
FOLD_WINDOW_S: Final = 0.5


class Console:
    """A log sink for the runtime and a handler for the API front's access records.

    Every function line is printed as `[Function request-id] line` (the REPORT line included),
    whatever started the invocation; the lines of warming pings fold into one line per tick.
    `quiet` prints access lines only; `functions` keeps the lines of those logical ids only.
    Every line also goes to `log_file` (unfiltered), which `python -m localstage logs` follows.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        quiet: bool = False,
        functions: Collection[str] = (),
        log_file: Path | None = None,
    ) -> None:
        self._stream = stream
        self._quiet = quiet
        self._functions = frozenset(functions)
        self._lock = threading.Lock()
        self._file = log_file.open("a", encoding="utf-8", buffering=1) if log_file else None
        self._pings: dict[str, list[str]] = {}  # function -> REPORT lines of the pending fold
        self._timers: dict[str, threading.Timer] = {}

    def __call__(self, line: LogLine) -> None:
        if line.warming:
            if line.text.startswith("REPORT "):
                self._fold(line)
            return
        rid = line.request_id or "init"
        self._write(f"[{line.function} {rid}] {line.text}", line.function)

    def access(self, method: str, path: str, status: int, ms: float, request_id: str) -> None:
        """One API Gateway access-log line: method, path, status, latency."""
        self._write(f"[api {request_id}] {method} {path} {status} {ms:.1f} ms", None, access=True)

    def close(self) -> None:
        with self._lock:
            timers = list(self._timers.values())
        for timer in timers:
            timer.cancel()
        for function in list(self._pings):
            self._flush_fold(function)
        if self._file is not None:
            self._file.close()
            self._file = None

    def access_handler(self) -> logging.Handler:
        """A logging handler turning the API front's "api request" records into access lines."""
        return _AccessHandler(self)

    def _fold(self, line: LogLine) -> None:
        with self._lock:
            self._pings.setdefault(line.function, []).append(line.text)
            previous = self._timers.get(line.function)
            if previous is not None:
                previous.cancel()
            timer = threading.Timer(FOLD_WINDOW_S, self._flush_fold, (line.function,))
            timer.daemon = True
            self._timers[line.function] = timer
        timer.start()

    def _flush_fold(self, function: str) -> None:
        with self._lock:
            reports = self._pings.pop(function, [])
            self._timers.pop(function, None)
        if reports:
            cold = sum(1 for report in reports if "Init Duration" in report)
            self._write(f"[{function} warming] {len(reports)} pings, {cold} cold", function)

    def _write(self, text: str, function: str | None, *, access: bool = False) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(text + "\n")
            if self._quiet and not access:
                return
            if self._functions and function is not None and function not in self._functions:
                return
            if self._functions and access:
                return
            print(text, file=self._stream, flush=True)


class _AccessHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = record.__dict__
        if record.getMessage() != "api request":
            return
        self._console.access(
            str(fields.get("method", "")),
            str(fields.get("path", "")),
            int(fields.get("status", 0)),
            float(fields.get("duration_ms", 0.0)),
            str(fields.get("request_id", "")),
        )
