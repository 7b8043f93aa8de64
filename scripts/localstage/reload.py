"""Reload: a saved change to a function's code or layer retires its warm environments."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

    from localstage.runtime import LocalRuntime
    from localstage.spec import FunctionSpec

__all__ = ["Reloader", "affected_functions"]

# watchfiles waits this long (ms) after the last change before it reports a burst of changes
# (an editor's save, a formatter run): short enough to feel instant, long enough to group them.
_QUIET_MS = 50


def affected_functions(
    changed: Iterable[Path], functions: Mapping[str, FunctionSpec]
) -> dict[str, list[Path]]:
    """For each function whose code folder or layer holds a changed file, those files."""
    affected: dict[str, list[Path]] = {}
    for path in changed:
        for logical_id, spec in functions.items():
            if any(path.is_relative_to(folder) for folder in (spec.code_dir, *spec.layer_dirs)):
                affected.setdefault(logical_id, []).append(path)
    return affected


def _drop_bytecode(source: Path) -> None:
    """Delete a changed module's cached bytecode. A .pyc records its source's mtime in whole
    seconds and its size: an edit of the same size within the same second would otherwise run
    the old code."""
    if source.suffix != ".py":
        return
    for cached in (source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"):
        cached.unlink(missing_ok=True)


class Reloader:
    """Watches the functions' code and layer folders, the events folder and the template.

    A change under a function's code or one of its layers retires that function's warm
    environments (LocalRuntime.retire_warm), so the next invocation loads the new code; a
    change to the template says that a restart applies it; each burst of changes is one line
    through `say`. The watcher runs on its own thread until stop().
    """

    def __init__(
        self,
        runtime: LocalRuntime,
        functions: Mapping[str, FunctionSpec],
        *,
        template: Path,
        events_dir: Path | None,
        say: Callable[[str], None],
        root: Path,
    ) -> None:
        self._runtime = runtime
        self._functions = dict(functions)
        self._template = template
        self._say = say
        self._root = root
        folders = {spec.code_dir for spec in functions.values()}
        folders.update(layer for spec in functions.values() for layer in spec.layer_dirs)
        if events_dir is not None and events_dir.is_dir():
            folders.add(events_dir)
        self._paths = sorted(folders | {template})
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="reloader", daemon=True)

    def start(self) -> None:
        """Start watching; returns once the watcher is in place."""
        self._thread.start()
        self._ready.wait(timeout=10)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        from pathlib import Path  # noqa: PLC0415

        import watchfiles  # noqa: PLC0415 - only a stage that reloads needs it

        watcher = watchfiles.watch(
            *self._paths,
            step=_QUIET_MS,
            stop_event=self._stop,
            yield_on_timeout=True,
            rust_timeout=200,
            raise_interrupt=False,
        )
        for changes in watcher:
            self._ready.set()  # the first (empty, timed-out) yield: the watch is in place
            if changes:
                self.apply({Path(path) for _, path in changes})

    def apply(self, changed: set[Path]) -> None:
        """Act on one burst of changed files and say what was done, in one line."""
        names = ", ".join(sorted(self._shown(path) for path in changed))
        if self._template in changed:
            self._say(f"reload: {names} changed: template.yaml is read at start, restart the stage")
            return
        affected = affected_functions(changed, self._functions)
        if not affected:
            self._say(f"reload: {names} changed: events are read per invocation, nothing to retire")
            return
        for path in changed:
            _drop_bytecode(path)
        retired = {logical_id: self._runtime.retire_warm(logical_id) for logical_id in affected}
        done = ", ".join(f"{fn} ({count} warm retired)" for fn, count in sorted(retired.items()))
        self._say(f"reload: {names} changed: {done}; the next invocation runs the new code")

    def _shown(self, path: Path) -> str:
        return str(path.relative_to(self._root)) if path.is_relative_to(self._root) else str(path)
