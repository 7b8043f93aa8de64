"""Typed settings read once from the environment, with one error that names every bad variable."""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import TYPE_CHECKING, Any, Final, dataclass_transform, overload

from lambdakit.errors import LambdaKitError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "SettingsError",
    "clear_settings_cache",
    "env",
    "get_settings",
    "in_range",
    "load_settings",
    "parse_bool",
    "parse_csv",
    "parse_float",
    "parse_int",
    "parse_str",
    "read_env",
    "settings",
]

_META_KEY: Final = "lambdakit.env"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class SettingsError(LambdaKitError):
    """One or more environment variables are missing or invalid; ``problems`` maps each to why."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        """Build the message ``"A: missing; B: 'x' is not an integer"`` from ``problems``."""
        self.problems: dict[str, str] = dict(problems)
        super().__init__("; ".join(f"{name}: {why}" for name, why in self.problems.items()))


@dataclasses.dataclass(frozen=True, slots=True)
class _EnvSpec:
    name: str
    parser: Callable[[str], Any]


def parse_str(raw: str) -> str:
    """Accept any non-blank string, stripped of surrounding whitespace."""
    value = raw.strip()
    if not value:
        raise ValueError("is empty")
    return value


def parse_int(raw: str) -> int:
    """Parse a base-10 integer."""
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not an integer") from None


def parse_float(raw: str) -> float:
    """Parse a decimal number."""
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None


def parse_bool(raw: str) -> bool:
    """Parse true/false, yes/no, on/off or 1/0 (any case)."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a boolean (true/false)")


def parse_csv(raw: str) -> tuple[str, ...]:
    """Split a comma-separated list, dropping blanks."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@overload
def env[T](name: str, parser: Callable[[str], T], *, default: T) -> T: ...
@overload
def env[T](name: str, parser: Callable[[str], T]) -> T: ...
def env(name: str, parser: Callable[[str], Any], *, default: Any = dataclasses.MISSING) -> Any:
    """Declare a settings field read from environment variable ``name`` through ``parser``.

    ``parser`` turns the raw string into the field's value or raises ``ValueError`` with a short
    reason; without ``default`` the variable is required. Use inside a ``@settings`` class.
    """
    return dataclasses.field(default=default, metadata={_META_KEY: _EnvSpec(name, parser)})


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(env,))
def settings[C](cls: type[C]) -> type[C]:
    """Make ``cls`` a frozen keyword-only dataclass whose ``env(...)`` fields read the env."""
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)


def load_settings[C](cls: type[C], environ: Mapping[str, str] | None = None) -> C:
    """Read and validate every ``env`` field of ``cls`` from ``environ`` (default ``os.environ``).

    Raises one ``SettingsError`` naming every missing or invalid variable, not just the first.
    An empty value counts as unset, so a field with a default takes the default.
    """
    source: Mapping[str, str] = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        spec = field.metadata.get(_META_KEY)
        if not isinstance(spec, _EnvSpec):
            continue
        raw = source.get(spec.name, "")
        if not raw.strip():
            if field.default is dataclasses.MISSING:
                problems[spec.name] = "missing"
            continue
        try:
            values[field.name] = spec.parser(raw)
        except ValueError as exc:
            problems[spec.name] = str(exc) or f"{raw!r} is invalid"
    if problems:
        raise SettingsError(problems)
    return cls(**values)


def read_env[T](
    name: str,
    parser: Callable[[str], T],
    *,
    default: T,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Read one variable without a settings class (for library code that needs a single value).

    Unset or blank gives ``default``; a value ``parser`` rejects raises ``SettingsError`` naming
    the variable, as ``load_settings`` does.
    """
    source: Mapping[str, str] = os.environ if environ is None else environ
    raw = source.get(name, "")
    if not raw.strip():
        return default
    try:
        return parser(raw)
    except ValueError as exc:
        raise SettingsError({name: str(exc) or f"{raw!r} is invalid"}) from None


_cache: dict[type[Any], Any] = {}
_cache_lock = threading.Lock()


def get_settings[C](cls: type[C]) -> C:
    """Return ``cls`` loaded from ``os.environ``, validated once per execution environment."""
    try:
        return _cache[cls]  # type: ignore[no-any-return]
    except KeyError:
        pass
    with _cache_lock:
        if cls not in _cache:
            _cache[cls] = load_settings(cls)
        return _cache[cls]  # type: ignore[no-any-return]


def clear_settings_cache() -> None:
    """Forget settings loaded by ``get_settings`` (tests, or after changing the environment)."""
    with _cache_lock:
        _cache.clear()


def in_range[N: (int, float)](
    parser: Callable[[str], N], *, minimum: N | None = None, maximum: N | None = None
) -> Callable[[str], N]:
    """Wrap a numeric parser so values outside ``[minimum, maximum]`` are rejected."""

    def parse(raw: str) -> N:
        value = parser(raw)
        if minimum is not None and value < minimum:
            raise ValueError(f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"{value} is above the maximum {maximum}")
        return value

    return parse
