"""SyncFunction settings, read and validated once per execution environment."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from lambdakit.settings import env, parse_str, settings

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
