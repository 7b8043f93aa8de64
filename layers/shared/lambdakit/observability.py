"""Powertools Logger (debug lines buffered), Metrics and Tracer from validated settings."""

from __future__ import annotations

import functools
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
    parse_int,
    parse_str,
    settings,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import aws_lambda_powertools
    import aws_lambda_powertools.logging.buffer
    import aws_lambda_powertools.metrics
    from aws_lambda_powertools import Logger, Metrics, Tracer
else:
    aws_lambda_powertools = lazy_import("aws_lambda_powertools")

__all__ = [
    "ObservabilitySettings",
    "PowertoolsMetricSink",
    "api_gateway_fields",
    "capture_handler",
    "create_logger",
    "create_metrics",
    "create_tracer",
    "finish_init",
    "log_context",
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
    # Bytes of DEBUG lines held per invocation and written only if it logs an error or raises;
    # 0 writes DEBUG lines as they come (subject to log_level and sampling), as before buffering.
    log_buffer_bytes: int = env("LOG_BUFFER_BYTES", in_range(parse_int, minimum=0), default=20480)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ObservabilitySettings:
        """Read the settings from ``environ`` (default ``os.environ``); raises ``SettingsError``."""
        return load_settings(cls, environ)


def _resolve(config: ObservabilitySettings | None) -> ObservabilitySettings:
    return config if config is not None else ObservabilitySettings.from_env()


def create_logger(
    config: ObservabilitySettings | None = None,
    *,
    packages: tuple[str, ...] = (),
    **kwargs: Any,
) -> Logger:
    """A Powertools ``Logger`` with the service, level, sampling and debug buffer of ``config``.

    DEBUG lines are buffered per invocation (``log_buffer_bytes``) unless the level is DEBUG
    anyway: an error logged flushes them, and ``log_context`` flushes them when the handler
    raises or when the invocation was sampled for DEBUG. The standard-library loggers of
    ``packages`` (e.g. ``("vulnstats",)``; ``lambdakit`` always) write through the same handler,
    formatter and level, so their lines carry the invocation's keys and are not lost to the
    root logger's WARNING threshold. Extra keyword arguments go to ``Logger`` unchanged.
    """
    cfg = _resolve(config)
    if cfg.log_buffer_bytes and cfg.log_level != "DEBUG" and "buffer_config" not in kwargs:
        kwargs["buffer_config"] = aws_lambda_powertools.logging.buffer.LoggerBufferConfig(
            max_bytes=cfg.log_buffer_bytes, buffer_at_verbosity="DEBUG", flush_on_error_log=True
        )
    logger = aws_lambda_powertools.Logger(
        service=cfg.service, level=cfg.log_level, sampling_rate=cfg.sample_rate, **kwargs
    )
    for name in ("lambdakit", *packages):
        _route_through(logging.getLogger(name), logger)
    return logger


def _route_through(package_logger: logging.Logger, logger: Logger) -> None:
    # The package's parent logger: modules imported later (child loggers) propagate to it. As
    # Powertools does for its own logger, the root's handlers (the Lambda runtime's) drop the
    # package's records instead of writing them a second time; pytest's capture keeps them.
    # Handlers run in order: the buffered DEBUG lines are written before the error record.
    package_logger.handlers = [_FlushOnError(logger), *logger.handlers]
    package_logger.setLevel(logger.log_level)
    for handler in logging.root.handlers:
        if type(handler).__module__ == "_pytest.logging" or any(
            isinstance(f, _DropPackage) and f.name == package_logger.name for f in handler.filters
        ):
            continue
        handler.addFilter(_DropPackage(package_logger.name))


class _FlushOnError(logging.Handler):
    """An error logged by a package writes the invocation's buffered DEBUG lines first."""

    def __init__(self, logger: Logger) -> None:
        super().__init__(logging.ERROR)
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        self._logger.flush_buffer()


class _DropPackage(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == self.name or record.name.startswith(self.name + "."))


def log_context[F: Callable[..., Any]](
    logger: Logger,
    *,
    correlation_id_path: str | None = None,
    debug_fields: Callable[[Any], Mapping[str, Any]] | None = None,
) -> Callable[[F], F]:
    """``logger.inject_lambda_context`` that keeps the invocation's DEBUG lines when they matter.

    Buffered DEBUG lines are flushed when the handler raises (an error logged flushes them too)
    and when Powertools sampled this invocation for DEBUG, so sampling keeps its meaning under
    buffering; otherwise they are dropped at the end. ``debug_fields(event)`` gives the keys of
    one DEBUG line written (or buffered) at the start of each invocation.
    """

    def decorate(handler: F) -> F:
        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            if debug_fields is not None:
                logger.debug("invocation", extra=dict(debug_fields(event)))
            result = handler(event, context)
            if logger.log_level <= logging.DEBUG:
                logger.flush_buffer()  # sampled: the whole invocation at DEBUG, as unbuffered
            return result

        wrapped = logger.inject_lambda_context(
            run,
            correlation_id_path=correlation_id_path,
            flush_buffer_on_uncaught_error=True,
        )
        return functools.wraps(handler)(wrapped)  # type: ignore[return-value]

    return decorate


def api_gateway_fields(event: Any) -> Mapping[str, Any]:
    """Route, method and query of an API Gateway REST proxy event (no headers: they hold keys)."""
    if not isinstance(event, dict):
        return {}
    return {
        "http_method": event.get("httpMethod"),
        "resource": event.get("resource"),
        "path": event.get("path"),
        "query": event.get("queryStringParameters"),
    }


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
