"""The original configuration comes back after a run, also when the run fails or is stopped."""

from __future__ import annotations

import os
import signal

import pytest
from fakes.lambda_client import FakeLambdaClient

from perftest.errors import GatewayError, Interrupted, RestoreError
from perftest.gateway import LambdaGateway
from perftest.modes import run_cold
from perftest.payloads import Payload
from perftest.restore import COLD_MARKER, ConfigurationGuard
from perftest.targets import Target

ORIGINAL = {"TABLE_NAME": "state", "LOG_LEVEL": "INFO"}


def _setup() -> tuple[FakeLambdaClient, list[Target]]:
    client = FakeLambdaClient(
        {
            "api": {"env": dict(ORIGINAL), "memory": 1024},
            "sync": {"env": {"TABLE_NAME": "state"}, "memory": 1536},
        }
    )
    gateway = LambdaGateway(client)
    targets = [
        Target(
            name, name, None, gateway, Payload("events/x.json", b"{}"), gateway.configuration(name)
        )
        for name in ("api", "sync")
    ]
    return client, targets


def _assert_originals(client: FakeLambdaClient) -> None:
    assert client.functions["api"] == {"env": ORIGINAL, "memory": 1024}
    assert client.functions["sync"] == {"env": {"TABLE_NAME": "state"}, "memory": 1536}


def test_a_finished_cold_run_restores_environment_and_memory() -> None:
    # given two functions measured with forced cold starts at another memory size
    client, targets = _setup()
    with ConfigurationGuard() as guard:
        calls = run_cold(targets, 3, guard, lambda _: None, memory_mb=512)
        # then during the run the marker and the size are in place and each call is cold
        assert COLD_MARKER in client.functions["api"]["env"]
        assert client.functions["api"]["memory"] == 512
    assert all(c.report is not None and c.report.cold for c in calls["api"])
    # then afterwards both are back as they were, and the guard says so
    _assert_originals(client)
    assert sorted(guard.restored) == ["api", "sync"]


def test_a_failure_mid_run_still_restores_and_the_failure_propagates() -> None:
    # given a run whose fourth invocation blows up (after both functions were changed)
    client, targets = _setup()

    def explode(name: str, n: int) -> None:
        if n == 3:
            raise RuntimeError("simulated failure mid-run")

    client.on_invoke = explode
    with pytest.raises(RuntimeError, match="simulated"), ConfigurationGuard() as guard:
        run_cold(targets, 5, guard, lambda _: None, memory_mb=2048)
    # then the original configurations are back
    _assert_originals(client)


def test_ctrl_c_mid_run_restores_before_the_interrupt_goes_on() -> None:
    client, targets = _setup()

    def interrupt(name: str, n: int) -> None:
        if n == 2:
            raise KeyboardInterrupt

    client.on_invoke = interrupt
    with pytest.raises(KeyboardInterrupt), ConfigurationGuard() as guard:
        run_cold(targets, 4, guard, lambda _: None)
    _assert_originals(client)


def test_sigterm_mid_run_unwinds_and_restores() -> None:
    # given a run that receives SIGTERM (as from `kill` or a CI timeout) during an invocation
    client, targets = _setup()
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(name: str, n: int) -> None:
        if n == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    client.on_invoke = terminate
    with pytest.raises(Interrupted, match="SIGTERM"), ConfigurationGuard() as guard:
        run_cold(targets, 3, guard, lambda _: None)
    _assert_originals(client)
    # then the previous SIGTERM handler is back in place
    assert signal.getsignal(signal.SIGTERM) == previous


def test_a_restore_that_fails_says_what_to_put_back_by_hand() -> None:
    # given updates that start failing after the first forced cold start
    client, targets = _setup()
    client.fail_updates_after = 1
    messages: list[str] = []
    with (
        pytest.raises((RestoreError, GatewayError)) as caught,
        ConfigurationGuard(messages.append) as guard,
    ):
        run_cold(targets[:1], 2, guard, lambda _: None)
    # then the error names the function and its original configuration
    text = str(caught.value)
    assert isinstance(caught.value, RestoreError)
    assert "api" in text
    assert "MemorySize=1024" in text
    assert '"LOG_LEVEL": "INFO"' in text


def test_nothing_is_restored_or_changed_when_nothing_was_changed() -> None:
    client, _ = _setup()
    with ConfigurationGuard():
        pass
    assert [c for c in client.calls if c[0] == "update"] == []
