"""The stage's console, as `sam local` prints it: function lines by request id, access lines."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

    from localstage.worker import LogLine

__all__ = ["Console"]

# Pings of one warming tick arrive within a moment of each other; they print as one line this
# long after the last one finished.
FOLD_WINDOW_S: Final = 0.5


class Console:
    """The stage's log sink: function lines and the API's access log lines.

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
        if line.access:  # the API's access log line, in the template's AccessLogSetting format
            self._write(f"[{line.logical_id or line.function}] {line.text}", None, access=True)
            return
        function = line.logical_id or line.function
        if line.warming:
            if line.text.startswith("REPORT "):
                self._fold(function, line.text)
            return
        self._write(f"[{function} {line.request_id or 'init'}] {line.text}", function)

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

    def _fold(self, function: str, report: str) -> None:
        with self._lock:
            self._pings.setdefault(function, []).append(report)
            previous = self._timers.get(function)
            if previous is not None:
                previous.cancel()
            timer = threading.Timer(FOLD_WINDOW_S, self._flush_fold, (function,))
            timer.daemon = True
            self._timers[function] = timer
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
