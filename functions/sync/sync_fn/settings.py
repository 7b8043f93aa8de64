"""SyncFunction settings, read and validated once per execution environment."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from lambdakit.settings import env, in_range, parse_float, parse_int, parse_str, settings

__all__ = ["SyncSettings", "parse_base_url", "parse_secret_arn"]

_SECRET_ARN: Final = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$"
)
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def parse_secret_arn(raw: str) -> str:
    """Accept a Secrets Manager secret ARN (the credentials never live in the environment)."""
    value = raw.strip()
    if not _SECRET_ARN.match(value):
        raise ValueError(f"{value!r} is not a Secrets Manager secret ARN")
    return value


def parse_base_url(raw: str) -> str:
    """Accept an https URL, or plain http on loopback only (the local stand-in)."""
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute URL")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return value
    raise ValueError(f"{value!r} must use https (plain http is allowed on loopback only)")


@settings
class SyncSettings:
    """What the sync needs from its environment; a bad value stops the cold start loudly."""

    app_version: str = env("APP_VERSION", parse_str, default="0.0.0-dev")
    stage_name: str = env("STAGE_NAME", parse_str, default="dev")
    table_name: str = env("TABLE_NAME", parse_str)
    archive_bucket: str = env("ARCHIVE_BUCKET", parse_str)
    vanta_secret_arn: str = env("VANTA_SECRET_ARN", parse_secret_arn)
    vanta_api_base_url: str = env(
        "VANTA_API_BASE_URL", parse_base_url, default="https://api.vanta.com"
    )
    # The upstream's published limits are 50-100 requests a minute: stay under them by default.
    pages_per_minute: float = env(
        "VANTA_PAGES_PER_MINUTE", in_range(parse_float, minimum=0.0, maximum=6000.0), default=50.0
    )
    page_size: int = env(
        "VANTA_PAGE_SIZE", in_range(parse_int, minimum=10, maximum=100), default=100
    )
    time_margin_seconds: float = env(
        "SYNC_TIME_MARGIN_SECONDS", in_range(parse_float, minimum=5.0, maximum=600.0), default=90.0
    )
    # The SyncRequests queue: continuations and deferred requests are sent here.
    sync_queue_url: str = env("SYNC_QUEUE_URL", parse_str)
    # A message being handled stays hidden, and the run's lease lasts, to the invocation's
    # deadline plus this margin: a dead worker's run is taken over that soon after it died.
    deadline_margin_seconds: float = env(
        "SYNC_DEADLINE_MARGIN_SECONDS",
        in_range(parse_float, minimum=5.0, maximum=300.0),
        default=30.0,
    )
    # A request whose run could not even be recorded comes back after this long (5 tries, then
    # the dead-letter queue).
    error_retry_seconds: float = env(
        "SYNC_ERROR_RETRY_SECONDS",
        in_range(parse_float, minimum=0.0, maximum=900.0),
        default=60.0,
    )
    lock_lease_seconds: int = env(
        "SYNC_LOCK_LEASE_SECONDS", in_range(parse_int, minimum=30, maximum=7200), default=960
    )
    idempotency_ttl_seconds: int = env(
        "SYNC_IDEMPOTENCY_TTL_SECONDS",
        in_range(parse_int, minimum=60, maximum=604800),
        default=86400,
    )
