"""Settings are typed, validated once, and one error names every bad or missing variable."""

from __future__ import annotations

import dataclasses

import pytest

from lambdakit.settings import (
    SettingsError,
    clear_settings_cache,
    env,
    get_settings,
    in_range,
    load_settings,
    parse_bool,
    parse_csv,
    parse_float,
    parse_int,
    parse_str,
    read_env,
    settings,
)


@settings
class AppSettings:
    table_name: str = env("TABLE_NAME", parse_str)
    max_pool_connections: int = env(
        "MAX_POOL_CONNECTIONS", in_range(parse_int, minimum=1), default=10
    )
    tracing_enabled: bool = env("TRACING_ENABLED", parse_bool, default=False)
    warm_targets: tuple[str, ...] = env("WARM_TARGETS", parse_csv, default=())
    cache_ttl_seconds: float = env("CACHE_TTL_SECONDS", parse_float, default=60.0)
    not_from_env: str = "constant"


def test_given_valid_environment_when_loading_then_fields_are_typed_values() -> None:
    loaded = load_settings(
        AppSettings,
        {
            "TABLE_NAME": " state ",
            "MAX_POOL_CONNECTIONS": "25",
            "TRACING_ENABLED": "True",
            "WARM_TARGETS": "api:live, sync:live,,",
            "CACHE_TTL_SECONDS": "2.5",
        },
    )

    assert loaded == AppSettings(
        table_name="state",
        max_pool_connections=25,
        tracing_enabled=True,
        warm_targets=("api:live", "sync:live"),
        cache_ttl_seconds=2.5,
    )


def test_given_only_required_variables_when_loading_then_defaults_apply() -> None:
    loaded = load_settings(AppSettings, {"TABLE_NAME": "t", "MAX_POOL_CONNECTIONS": ""})

    assert loaded.max_pool_connections == 10
    assert loaded.tracing_enabled is False
    assert loaded.not_from_env == "constant"


def test_given_several_problems_when_loading_then_one_error_names_every_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            AppSettings,
            {"MAX_POOL_CONNECTIONS": "abc", "TRACING_ENABLED": "maybe", "CACHE_TTL_SECONDS": "x"},
        )

    assert str(caught.value) == (
        "TABLE_NAME: missing; MAX_POOL_CONNECTIONS: 'abc' is not an integer; "
        "TRACING_ENABLED: 'maybe' is not a boolean (true/false); "
        "CACHE_TTL_SECONDS: 'x' is not a number"
    )
    assert set(caught.value.problems) == {
        "TABLE_NAME",
        "MAX_POOL_CONNECTIONS",
        "TRACING_ENABLED",
        "CACHE_TTL_SECONDS",
    }


def test_given_blank_required_variable_when_loading_then_it_is_reported_missing() -> None:
    with pytest.raises(SettingsError, match=r"^TABLE_NAME: missing$"):
        load_settings(AppSettings, {"TABLE_NAME": "   "})


def test_given_value_out_of_range_when_loading_then_error_names_variable_and_bound() -> None:
    with pytest.raises(SettingsError, match="MAX_POOL_CONNECTIONS: 0 is below the minimum 1"):
        load_settings(AppSettings, {"TABLE_NAME": "t", "MAX_POOL_CONNECTIONS": "0"})


def test_given_loaded_settings_when_assigning_then_they_are_frozen() -> None:
    loaded = load_settings(AppSettings, {"TABLE_NAME": "t"})

    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.table_name = "other"  # type: ignore[misc]


def test_given_cached_settings_when_environment_changes_then_first_load_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TABLE_NAME", "first")
    first = get_settings(AppSettings)
    monkeypatch.setenv("TABLE_NAME", "second")

    assert get_settings(AppSettings) is first
    clear_settings_cache()
    assert get_settings(AppSettings).table_name == "second"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("yes", True), ("ON", True), ("0", False), ("no", False), ("False", False)],
)
def test_given_boolean_spellings_when_parsing_then_they_are_understood(
    raw: str, expected: bool
) -> None:
    assert parse_bool(raw) is expected


def test_given_maximum_when_value_above_then_rejected() -> None:
    parse = in_range(parse_float, maximum=1.0)

    assert parse("1") == 1.0
    with pytest.raises(ValueError, match="above the maximum"):
        parse("1.5")


def test_given_single_variable_when_read_then_parsed_defaulted_or_named_in_error() -> None:
    assert read_env("N", parse_int, default=1, environ={"N": "7"}) == 7
    assert read_env("N", parse_int, default=1, environ={"N": " "}) == 1
    with pytest.raises(SettingsError, match="N: 'x' is not an integer"):
        read_env("N", parse_int, default=1, environ={"N": "x"})
