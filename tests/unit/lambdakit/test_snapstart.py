"""SnapStart hooks: registered with the runtime's registry; a restore renews clients and seeds."""

from __future__ import annotations

import random
import sys
from typing import TYPE_CHECKING, Any

import pytest

from lambdakit import retry, snapstart
from lambdakit.clients import get_client

if TYPE_CHECKING:
    from collections.abc import Callable


class FakeRegistry:
    """Records registrations as snapshot_restore_py would, and plays snapshot and restore."""

    def __init__(self) -> None:
        self.before: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.after: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def register_before_snapshot(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.before.append((func, args))
        return func

    def register_after_restore(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.after.append((func, args))
        return func

    def snapshot(self) -> None:
        for func, args in reversed(self.before):  # Lambda runs them in reverse order
            func(*args)

    def restore(self) -> None:
        for func, args in self.after:
            func(*args)


@pytest.fixture
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


@pytest.mark.usefixtures("_aws_env")
def test_after_a_restore_every_cached_client_is_new_and_callbacks_run_in_order() -> None:
    # given a function that made its clients during init and registered its hooks
    registry = FakeRegistry()
    dynamodb, lam = get_client("dynamodb"), get_client("lambda")
    seen: list[str] = []
    rebound: list[Any] = []

    def rebind() -> None:
        seen.append("rebind")
        rebound.append(get_client("dynamodb"))

    assert snapstart.install([rebind, lambda: seen.append("second")], registry=registry)

    # when Lambda takes the snapshot, then restores it
    registry.snapshot()
    registry.restore()

    # then the cache holds new clients for the same services, and the callbacks saw them
    assert get_client("dynamodb") is not dynamodb
    assert get_client("lambda") is not lam
    assert get_client("dynamodb").meta.service_model.service_name == "dynamodb"
    assert rebound == [get_client("dynamodb")]
    assert seen == ["rebind", "second"]


def test_a_restore_reseeds_random_and_the_retry_jitter() -> None:
    # given two "copies" of one snapshot: the same generator state
    random.seed(1234)
    retry.reseed_jitter()  # ensure the attribute exists before copying its state
    state, jitter_state = random.getstate(), retry._JITTER.getstate()

    draws = []
    for _ in range(2):
        random.setstate(state)
        retry._JITTER.setstate(jitter_state)
        # when each is restored
        snapstart.after_restore()
        draws.append((random.random(), retry._JITTER.random()))  # noqa: S311

    # then they no longer draw the same numbers
    assert draws[0][0] != draws[1][0]
    assert draws[0][1] != draws[1][1]


def test_without_the_runtime_library_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    # given an interpreter without snapshot_restore_py (it ships with Lambda's managed runtime)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)
    # then there is no registry and installing is a no-op
    assert snapstart.runtime_registry() is None
    assert snapstart.install() is False


def test_the_hooks_are_registered_once_each() -> None:
    registry = FakeRegistry()

    snapstart.install(registry=registry)

    assert [func.__name__ for func, _ in registry.before] == ["close_connections"]
    assert [func.__name__ for func, _ in registry.after] == ["after_restore"]
