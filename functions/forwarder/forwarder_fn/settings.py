"""MetricsForwarderFunction settings, read and validated once per execution environment."""

from __future__ import annotations

from lambdakit.settings import env, in_range, parse_csv, parse_float, parse_str, settings

__all__ = ["ForwarderSettings", "parse_https_url"]


def parse_https_url(raw: str) -> str:
    """An https:// base URL; plain http:// only to 127.0.0.1 (the local stage's stand-in)."""
    url = raw.strip().rstrip("/")
    if url.startswith("https://") or url.startswith("http://127.0.0.1:"):
        return url
    raise ValueError(f"{raw!r} is not an https:// URL (http:// only to 127.0.0.1)")


@settings
class ForwarderSettings:
    """What the forwarder needs; a bad value stops the cold start loudly."""

    # https://api.<site>, e.g. https://api.datadoghq.eu for the site datadoghq.eu.
    api_url: str = env("DATADOG_API_URL", parse_https_url)
    api_key_secret_arn: str = env("DATADOG_API_KEY_SECRET_ARN", parse_str)
    dead_letter_queue_url: str = env("FORWARDER_DLQ_URL", parse_str)
    metric_prefix: str = env("METRIC_PREFIX", parse_str, default="vulnstats")
    tags: tuple[str, ...] = env("METRIC_TAGS", parse_csv, default=())
    # Seconds the circuit stays open before one probe call.
    breaker_reset_seconds: float = env(
        "FORWARDER_BREAKER_RESET_SECONDS",
        in_range(parse_float, minimum=1.0, maximum=3600.0),
        default=60.0,
    )
