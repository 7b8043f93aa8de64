"""Powertools Logger, Metrics and (only if enabled) Tracer from validated settings; gc.freeze."""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any, Final

from lambdakit.lazy import lazy_import
from lambdakit.settings import (
    SettingsError,
    env,
    in_range,
    load_settings,
    parse_bool,
    parse_float,
    parse_str,
    settings,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import aws_lambda_powertools
    import aws_lambda_powertools.metrics
    from aws_lambda_powertools import Logger, Metrics, Tracer
else:
    aws_lambda_powertools = lazy_import("aws_lambda_powertools")

__all__ = [
    "ObservabilitySettings",
    "PowertoolsMetricSink",
    "capture_handler",
    "create_logger",
    "create_metrics",
    "create_tracer",
    "finish_init",
    "parse_log_level",
]

_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_log_level(raw: str) -> str:
    """Accept a standard logging level name, any case."""
    level = raw.strip().upper()
    if level not in _LEVELS:
        raise ValueError(f"{raw!r} is not a log level ({', '.join(_LEVELS)})")
    return level


@settings
class ObservabilitySettings:
    """The Powertools variables every function reads, validated once."""

    service: str = env("POWERTOOLS_SERVICE_NAME", parse_str, default="service_undefined")
    namespace: str | None = env("POWERTOOLS_METRICS_NAMESPACE", parse_str, default=None)
    log_level: str = env("POWERTOOLS_LOG_LEVEL", parse_log_level, default="INFO")
    # Share of invocations logged at DEBUG whatever log_level says (Powertools' sampling).
    sample_rate: float = env(
        "POWERTOOLS_LOGGER_SAMPLE_RATE",
        in_range(parse_float, minimum=0.0, maximum=1.0),
        default=0.0,
    )
    tracing_enabled: bool = env("TRACING_ENABLED", parse_bool, default=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ObservabilitySettings:
        """Read the settings from ``environ`` (default ``os.environ``); raises ``SettingsError``."""
        return load_settings(cls, environ)


def _resolve(config: ObservabilitySettings | None) -> ObservabilitySettings:
    return config if config is not None else ObservabilitySettings.from_env()


def create_logger(config: ObservabilitySettings | None = None, **kwargs: Any) -> Logger:
    """A Powertools ``Logger`` with the service, level and debug sampling rate of ``config``.

    Extra keyword arguments go to ``Logger`` unchanged.
    """
    cfg = _resolve(config)
    return aws_lambda_powertools.Logger(
        service=cfg.service, level=cfg.log_level, sampling_rate=cfg.sample_rate, **kwargs
    )


def create_metrics(config: ObservabilitySettings | None = None) -> Metrics:
    """A Powertools ``Metrics`` (EMF) with the service and namespace of ``config``.

    Raises ``SettingsError`` when no namespace is set: Powertools would otherwise accept it here
    and fail at the first flush, in the middle of an invocation.
    """
    cfg = _resolve(config)
    if cfg.namespace is None:
        raise SettingsError({"POWERTOOLS_METRICS_NAMESPACE": "missing (needed to emit metrics)"})
    return aws_lambda_powertools.Metrics(service=cfg.service, namespace=cfg.namespace)


def create_tracer(config: ObservabilitySettings | None = None) -> Tracer | None:
    """A Powertools ``Tracer`` when tracing is enabled, else None.

    Constructing a Tracer imports the X-Ray SDK (hundreds of milliseconds of cold start) even
    with tracing disabled, so a disabled tracer is not constructed at all.
    """
    cfg = _resolve(config)
    if not cfg.tracing_enabled:
        return None
    return aws_lambda_powertools.Tracer(service=cfg.service)


def capture_handler[F: Callable[..., Any]](tracer: Tracer | None) -> Callable[[F], F]:
    """``tracer.capture_lambda_handler`` when there is a tracer, else a no-op decorator."""
    if tracer is None:
        return _identity
    return tracer.capture_lambda_handler  # type: ignore[return-value]


def _identity[F](fn: F) -> F:
    return fn


class PowertoolsMetricSink:
    """Adapts a Powertools ``Metrics`` to lambdakit's ``MetricSink`` (count metrics)."""

    __slots__ = ("_metrics",)

    def __init__(self, metrics: Metrics) -> None:
        """Wrap ``metrics``."""
        self._metrics = metrics

    def add(self, name: str, value: float = 1.0) -> None:
        """Buffer a Count metric; the handler's ``log_metrics`` (or ``flush``) publishes it."""
        self._metrics.add_metric(
            name=name, unit=aws_lambda_powertools.metrics.MetricUnit.Count, value=value
        )

    def flush(self) -> None:
        """Publish the buffered metrics now (one EMF line)."""
        self._metrics.flush_metrics()


def finish_init(*, freeze: bool = True, collect: bool = True) -> None:
    """Call once at the end of init (module level of the handler), after clients and settings.

    Runs ``gc.collect()`` (unless ``collect`` is False) then ``gc.freeze()``.
    """
    # Init leaves garbage behind (import temporaries, parsed config): collect it first so it is
    # not frozen for the environment's lifetime. Freezing then moves every survivor (modules,
    # clients, settings: objects that live as long as the environment) to the permanent
    # generation, which later collections never traverse: shorter GC pauses in warm invocations.
    # A function whose init leaves little cyclic garbage may skip the collection: a full pass
    # over every object of a loaded heap is a measurable share of a small cold start.
    if collect:
        gc.collect()
    if freeze:
        gc.freeze()
    logging.getLogger(__name__).debug("init finished", extra={"frozen": gc.get_freeze_count()})
