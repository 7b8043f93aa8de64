"""Cold start: the first real invocation, unless a warming ping reached the environment first."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from lambdakit import coldstart
from lambdakit.coldstart import ColdStartTracker, process_age_seconds, reset_tracker

if TYPE_CHECKING:
    from fakes.clock import FakeClock


def make_tracker(age: float | None = 0.4125) -> ColdStartTracker:
    return ColdStartTracker(process_age=lambda: age, instance_id="env-1")


def test_given_new_environment_when_first_real_invocation_then_cold_start_once() -> None:
    tracker = make_tracker()

    assert tracker.record_invocation() is True
    assert tracker.is_cold_start is True
    assert tracker.record_invocation() is False
    assert tracker.is_cold_start is False


def test_given_ping_first_when_real_invocation_follows_then_it_is_not_a_cold_start() -> None:
    tracker = make_tracker()

    assert tracker.record_ping() is True  # the ping paid for init
    assert tracker.record_invocation() is False
    assert tracker.is_cold_start is False
    assert tracker.first_call_was_ping is True


def test_given_real_invocation_first_when_ping_follows_then_ping_is_not_cold() -> None:
    tracker = make_tracker()
    tracker.record_invocation()

    assert tracker.record_ping() is False
    assert tracker.is_cold_start is True  # still describes the latest real invocation
    assert (tracker.calls, tracker.pings, tracker.real_invocations) == (2, 1, 1)


def test_given_no_invocation_yet_then_not_cold_and_no_init_duration() -> None:
    tracker = make_tracker()

    assert tracker.is_cold_start is False
    assert tracker.init_duration_ms is None


def test_given_process_age_when_first_call_then_init_duration_is_measured_once() -> None:
    ages = iter([0.4125, 9.0])
    tracker = ColdStartTracker(process_age=lambda: next(ages))

    tracker.record_ping()
    tracker.record_invocation()

    assert tracker.init_duration_ms == pytest.approx(412.5)


def test_given_no_proc_when_first_call_then_init_duration_falls_back_to_import_time(
    clock: FakeClock,
) -> None:
    clock.now = coldstart._IMPORTED_AT + 0.25  # the documented fallback origin
    tracker = ColdStartTracker(clock=clock, process_age=lambda: None)

    tracker.record_invocation()

    assert tracker.init_duration_ms == pytest.approx(250.0)


def test_given_linux_when_reading_process_age_then_positive_and_plausible() -> None:
    age = process_age_seconds()

    assert age is not None
    assert 0.0 <= age < 7 * 24 * 3600


def test_given_environment_tracker_when_using_module_functions_then_they_agree() -> None:
    tracker = reset_tracker(make_tracker())
    tracker.record_invocation()

    assert coldstart.is_cold_start() is True
    assert coldstart.init_duration_ms() == pytest.approx(412.5)
    assert coldstart.instance_id() == "env-1"
    assert coldstart.get_tracker() is tracker


def test_given_default_tracker_then_instance_id_is_a_uuid_stable_for_the_environment() -> None:
    first = coldstart.instance_id()

    assert len(first) == 36
    assert first.count("-") == 4
    assert coldstart.instance_id() == first


def test_given_provisioned_concurrency_when_first_calls_then_nothing_is_cold() -> None:
    tracker = ColdStartTracker(process_age=lambda: 3600.0, pre_initialised=True)

    assert tracker.record_invocation() is False
    assert tracker.record_ping() is False
    assert tracker.init_duration_ms is None


@pytest.mark.parametrize(
    ("initialization_type", "cold"),
    [("provisioned-concurrency", False), ("on-demand", True), (None, True)],
)
def test_given_initialization_type_variable_when_environment_tracker_made_then_it_decides(
    monkeypatch: pytest.MonkeyPatch, initialization_type: str | None, cold: bool
) -> None:
    if initialization_type is None:
        monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", initialization_type)

    reset_tracker()

    assert coldstart.get_tracker().record_invocation() is cold
    assert coldstart.is_cold_start() is cold
