"""Fakes for lambdakit tests: a clock, a sleep that advances it, a Lambda context; state resets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from fakes.clock import FakeClock, FakeSleep

from lambdakit.breaker import clear_breakers
from lambdakit.clients import clear_clients
from lambdakit.coldstart import reset_tracker
from lambdakit.settings import clear_settings_cache

if TYPE_CHECKING:
    from collections.abc import Iterator


class FakeContext:
    """The parts of the Lambda context lambdakit reads; the invocation ends on the fake clock."""

    def __init__(
        self,
        clock: FakeClock,
        remaining_ms: int = 30_000,
        function_name: str = "api",
        function_version: str = "$LATEST",
    ) -> None:
        self.clock = clock
        self.ends_at = clock() + remaining_ms / 1000.0
        self.function_name = function_name
        self.function_version = function_version
        self.aws_request_id = "req-1"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.memory_limit_in_mb = 256

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.ends_at - self.clock()) * 1000))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


@pytest.fixture(autouse=True)
def _fresh_environment() -> Iterator[None]:
    """Each test starts as a new execution environment would: no clients, breakers or settings."""
    clear_clients()
    clear_breakers()
    clear_settings_cache()
    reset_tracker()
    yield
    clear_clients()
    clear_breakers()
    clear_settings_cache()
    reset_tracker()
