"""SnapStart runtime hooks: fresh network clients and fresh randomness in every restored copy.

Under SnapStart, Lambda runs init once, snapshots the memory and restores that snapshot into every
new execution environment. Whatever init left in memory is then shared by all of them: open
sockets (dead after a restore), credentials resolved at init, and the state of every
pseudo-random generator (each copy would draw the same jitter and the same "random" numbers).
:func:`install` registers, through the runtime's ``snapshot_restore_py`` (part of the Lambda
Python managed runtime, absent elsewhere), a before-snapshot hook that closes the connections of
the cached clients (no socket goes into the snapshot) and an after-restore hook that:

1. re-creates every client of :mod:`lambdakit.clients` on a new botocore session (the parsed
   service models are kept, so this costs milliseconds, not the init's hundreds);
2. re-seeds ``random`` and lambdakit's retry jitter from the operating system;
3. runs the function's own callbacks (e.g. re-binding a store to the new client), in order.

Keep secrets out of init under SnapStart: a value fetched during init lives in every snapshot
copy and outlives its rotation. Fetch them on first use instead (the sync's credentials are).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Protocol

from lambdakit.clients import close_connections, recreate_clients
from lambdakit.retry import reseed_jitter

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["HookRegistry", "after_restore", "install", "runtime_registry"]


class HookRegistry(Protocol):
    """What ``snapshot_restore_py`` offers (a fake in tests)."""

    def register_before_snapshot(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``func`` before the snapshot is taken."""
        ...

    def register_after_restore(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``func`` after every restore, before the first invocation."""
        ...


def runtime_registry() -> HookRegistry | None:
    """The Lambda runtime's ``snapshot_restore_py`` module, or None where it is not installed."""
    try:
        import snapshot_restore_py  # noqa: PLC0415 - only under SnapStart, only on Lambda
    except ImportError:
        return None
    registry: HookRegistry = snapshot_restore_py
    return registry


def after_restore(callbacks: Sequence[Callable[[], object]] = ()) -> None:
    """What a restore needs: new clients, new seeds, then ``callbacks`` in order."""
    recreate_clients()
    random.seed()  # no argument: seeded from os.urandom, different in every restored copy
    reseed_jitter()
    for callback in callbacks:
        callback()


def install(
    callbacks: Sequence[Callable[[], object]] = (),
    *,
    registry: HookRegistry | None = None,
) -> bool:
    """Register the hooks (``callbacks`` run after restore); returns whether a registry took them.

    ``registry`` defaults to :func:`runtime_registry`; without one (tests, the local stage, an
    on-demand function) nothing is registered and False is returned. Call once, at init.
    """
    target = registry if registry is not None else runtime_registry()
    if target is None:
        return False
    target.register_before_snapshot(close_connections)
    target.register_after_restore(after_restore, tuple(callbacks))
    return True
