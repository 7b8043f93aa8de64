"""Change functions' configurations for a benchmark, and always put the originals back.

Every change goes through a ConfigurationGuard. Before its first change to a function it
records the original environment and memory size; on leaving the ``with`` block, whether the
run finished, raised, was stopped with Ctrl-C (KeyboardInterrupt) or with SIGTERM/SIGHUP
(turned into ``Interrupted``), it writes the originals back, waits for the update, and checks
that they are live. A signal that arrives during the restore is noted and deferred, so a
second Ctrl-C cannot leave a function half changed.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import uuid
from typing import TYPE_CHECKING, Any, Final

from perftest.errors import GatewayError, Interrupted, RestoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType, TracebackType

    from perftest.gateway import FunctionConfig, LambdaGateway

__all__ = ["COLD_MARKER", "ConfigurationGuard"]

# The environment variable whose new value forces new execution environments.
COLD_MARKER: Final = "PERFTEST_COLD_START"
_SIGNALS: Final = (signal.SIGTERM, signal.SIGHUP)


class ConfigurationGuard:
    """Records originals before the first change; restores them on exit, whatever happened."""

    def __init__(self, say: Callable[[str], None] = lambda _: None) -> None:
        self._say = say
        self._originals: dict[str, tuple[LambdaGateway, FunctionConfig]] = {}
        self._previous_handlers: dict[int, Any] = {}
        self.restored: list[str] = []

    # Changes
    def _remember(self, gateway: LambdaGateway, function: str) -> FunctionConfig:
        if function not in self._originals:
            self._originals[function] = (gateway, gateway.configuration(function))
        return self._originals[function][1]

    def force_cold(
        self, gateway: LambdaGateway, function: str, *, memory_mb: int | None = None
    ) -> None:
        """Change the environment (and memory) so the next invocation gets a new environment."""
        original = self._remember(gateway, function)
        environment = {**original.environment, COLD_MARKER: uuid.uuid4().hex}
        gateway.update(function, environment=environment, memory_mb=memory_mb)
        gateway.wait_updated(function)

    @property
    def changed(self) -> list[str]:
        """Functions whose configuration the guard has recorded (and will restore)."""
        return list(self._originals)

    # Restoring
    def restore(self) -> None:
        """Put every original configuration back and check it; raise RestoreError if any fails."""
        failures: list[str] = []
        for function, (gateway, original) in list(self._originals.items()):
            try:
                self._restore_one(gateway, function, original)
            except GatewayError as error:
                failures.append(
                    f"{function}: {error}; put back by hand: MemorySize={original.memory_mb}, "
                    f"Environment={json.dumps({'Variables': original.environment})}"
                )
                continue
            del self._originals[function]
            self.restored.append(function)
        if failures:
            raise RestoreError(
                "could not restore the original configuration of " + "; ".join(failures)
            )

    def _restore_one(self, gateway: LambdaGateway, function: str, original: FunctionConfig) -> None:
        self._say(f"restoring the original configuration of {function}")
        gateway.update(function, environment=original.environment, memory_mb=original.memory_mb)
        gateway.wait_updated(function)
        now = gateway.configuration(function)
        if now.environment != original.environment or now.memory_mb != original.memory_mb:
            raise GatewayError(
                f"after the restore {function} reads MemorySize={now.memory_mb} and "
                f"{len(now.environment)} variables, not the originals"
            )

    # Context management and signals
    def __enter__(self) -> ConfigurationGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous_handlers[signum] = signal.signal(signum, _raise_interrupted)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._originals:
                if exc_type is not None:
                    self._say(f"stopping ({exc_type.__name__}); restoring before exit")
                with self._signals_deferred():
                    self.restore()
        finally:
            for signum, handler in self._previous_handlers.items():
                signal.signal(signum, handler)
            self._previous_handlers.clear()

    @contextlib.contextmanager
    def _signals_deferred(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        arrived: list[int] = []

        def defer(signum: int, frame: FrameType | None) -> None:
            del frame
            arrived.append(signum)
            self._say("still restoring the original configuration; the run ends right after")

        saved = {s: signal.signal(s, defer) for s in (signal.SIGINT, *_SIGNALS)}
        try:
            yield
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)
        if arrived and signal.SIGINT in arrived:
            raise KeyboardInterrupt
        if arrived:
            raise Interrupted(signal.Signals(arrived[0]).name)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    del frame
    raise Interrupted(signal.Signals(signum).name)
