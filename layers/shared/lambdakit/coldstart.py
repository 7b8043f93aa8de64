"""Cold-start and init-duration bookkeeping of one execution environment.

Definitions (per execution environment, i.e. per Python process):

- The *first call* is the first handler call of any kind; the init duration is measured from
  process start to that call.
- A warming ping is *cold* when it is the first call: the environment was created for it.
- A real (non-ping) invocation is a *cold start* when it is the first call. If a ping came
  first, the environment was warmed by that ping and the first real invocation is **not** a
  cold start: the request did not pay for init, which is the point of warming.
- In a provisioned-concurrency environment (``AWS_LAMBDA_INITIALIZATION_TYPE`` is
  ``provisioned-concurrency``) init ran ahead of traffic: no call is cold and no init duration
  is reported (the time from process start to the first call includes idle time there).

Process start comes from ``/proc/self/stat`` (read at the first call, never at import), with the
import of this module as the fallback origin elsewhere. Under SnapStart the figure also spans the
time between snapshot and restore, so it is only meaningful for on-demand environments.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Final

from lambdakit.lazy import lazy_import

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable

    import lambdakit.settings
else:
    uuid = lazy_import("uuid")
    # Read once, when the environment's tracker is made (first handler call), not at import.
    lambdakit = lazy_import("lambdakit.settings")

__all__ = [
    "ColdStartTracker",
    "get_tracker",
    "init_duration_ms",
    "instance_id",
    "is_cold_start",
    "process_age_seconds",
    "reset_tracker",
]

# Fallback origin when /proc is unavailable: the import of this module, early in init.
_IMPORTED_AT: Final = time.monotonic()


def process_age_seconds() -> float | None:
    """Seconds since this process started, from /proc (Linux, as on Lambda); None elsewhere."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        # Field 22 of proc(5), "starttime", in clock ticks since boot; fields[0] here is field 3.
        start_ticks = int(fields[19])
        ticks_per_second = os.sysconf("SC_CLK_TCK")
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / ticks_per_second
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class ColdStartTracker:
    """Counts the environment's calls and answers the cold-start questions defined above."""

    __slots__ = (
        "_clock",
        "_cold_start",
        "_lock",
        "_process_age",
        "calls",
        "first_call_was_ping",
        "init_duration_ms",
        "instance_id",
        "pings",
        "pre_initialised",
        "real_invocations",
    )

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        process_age: Callable[[], float | None] = process_age_seconds,
        instance_id: str | None = None,
        pre_initialised: bool = False,
    ) -> None:
        """Start with no calls; ``process_age`` gives seconds since process start at first call.

        ``pre_initialised`` marks a provisioned-concurrency environment (see the module doc).
        """
        self.pre_initialised = pre_initialised
        self._clock = clock
        self._process_age = process_age
        self._lock = threading.Lock()
        self._cold_start = False
        self.calls = 0
        self.first_call_was_ping = False
        self.pings = 0
        self.real_invocations = 0
        self.init_duration_ms: float | None = None
        self.instance_id = instance_id if instance_id is not None else str(uuid.uuid4())

    def _first_call(self) -> bool:
        self.calls += 1
        if self.calls != 1 or self.pre_initialised:
            return False
        age = self._process_age()
        if age is None:
            age = self._clock() - _IMPORTED_AT
        self.init_duration_ms = round(age * 1000.0, 3)
        return True

    def record_ping(self) -> bool:
        """Record a warming ping; return whether it was cold (the environment's first call)."""
        with self._lock:
            self.pings += 1
            cold = self._first_call()
            if cold:
                self.first_call_was_ping = True
            return cold

    def record_invocation(self) -> bool:
        """Record a real invocation; return whether it is the environment's cold start."""
        with self._lock:
            self.real_invocations += 1
            self._cold_start = self._first_call()
            return self._cold_start

    @property
    def is_cold_start(self) -> bool:
        """Whether the latest real invocation was the cold start (False before any)."""
        return self._cold_start


_tracker: ColdStartTracker | None = None
_tracker_lock = threading.Lock()


def get_tracker() -> ColdStartTracker:
    """The execution environment's tracker (created on first use)."""
    global _tracker  # noqa: PLW0603 - one tracker per environment is the point
    tracker = _tracker
    if tracker is None:
        with _tracker_lock:
            if _tracker is None:
                _tracker = _tracker_from_environment()
            tracker = _tracker
    return tracker


def _tracker_from_environment() -> ColdStartTracker:
    initialization_type = lambdakit.settings.read_env(
        "AWS_LAMBDA_INITIALIZATION_TYPE", lambdakit.settings.parse_str, default="on-demand"
    )
    return ColdStartTracker(pre_initialised=initialization_type == "provisioned-concurrency")


def reset_tracker(tracker: ColdStartTracker | None = None) -> ColdStartTracker:
    """Replace the environment's tracker and return it (tests).

    With ``tracker`` None the new tracker is made from the environment, as ``get_tracker`` does.
    """
    global _tracker  # noqa: PLW0603
    with _tracker_lock:
        _tracker = tracker if tracker is not None else _tracker_from_environment()
        return _tracker


def is_cold_start() -> bool:
    """Whether the current real invocation is this environment's cold start (pings excluded).

    True only for the first real invocation of an on-demand environment that no warming ping
    reached first; the warm guard records invocations, so call this inside a guarded handler.
    """
    return get_tracker().is_cold_start


def init_duration_ms() -> float | None:
    """Milliseconds from process start to the first handler call; None before the first call."""
    return get_tracker().init_duration_ms


def instance_id() -> str:
    """A random id of this execution environment, stable for its lifetime."""
    return get_tracker().instance_id
