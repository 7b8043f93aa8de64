"""ApiFunction settings, read and validated once per execution environment."""

from __future__ import annotations

from typing import Final

from lambdakit.settings import env, in_range, parse_float, parse_int, parse_str, settings

__all__ = ["DYNAMODB_CLIENTS", "ApiSettings"]

# "http": vulnstats.dynamo_http (no botocore on the read path, the default); "botocore": the
# cached botocore client, kept as an escape hatch and for A/B comparisons.
DYNAMODB_CLIENTS: Final = ("http", "botocore")


def _parse_dynamodb_client(raw: str) -> str:
    value = raw.strip().lower()
    if value not in DYNAMODB_CLIENTS:
        raise ValueError(f"{raw!r} is not one of {', '.join(DYNAMODB_CLIENTS)}")
    return value


@settings
class ApiSettings:
    """What the API needs from its environment; a bad value stops the cold start loudly."""

    app_version: str = env("APP_VERSION", parse_str, default="0.0.0-dev")
    stage_name: str = env("STAGE_NAME", parse_str, default="dev")
    table_name: str = env("TABLE_NAME", parse_str)
    # POST /sync sends its trigger to this queue (the SyncRequests queue in front of the sync).
    sync_queue_url: str = env("SYNC_QUEUE_URL", parse_str)
    cache_ttl_seconds: int = env(
        "CACHE_TTL_SECONDS", in_range(parse_int, minimum=0, maximum=3600), default=300
    )
    dynamodb_client: str = env("DYNAMODB_CLIENT", _parse_dynamodb_client, default="http")
    # Timeouts of the http client's connection set-up (TCP and TLS) and of each read; the same
    # defaults as the botocore clients (lambdakit.clients.ClientOptions).
    dynamodb_connect_timeout: float = env(
        "DYNAMODB_CONNECT_TIMEOUT", in_range(parse_float, minimum=0.05, maximum=30.0), default=2.0
    )
    dynamodb_read_timeout: float = env(
        "DYNAMODB_READ_TIMEOUT", in_range(parse_float, minimum=0.05, maximum=60.0), default=10.0
    )
    # /health/ready answers 503 once the last successful sync is older than this (seconds).
    readiness_max_data_age_seconds: int = env(
        "READINESS_MAX_DATA_AGE_SECONDS",
        in_range(parse_int, minimum=60, maximum=604800),
        default=7200,
    )
    region: str = env("AWS_REGION", parse_str, default="local")
    # Set by Lambda: "on-demand", "provisioned-concurrency" or "snap-start".
    initialization_type: str = env("AWS_LAMBDA_INITIALIZATION_TYPE", parse_str, default="on-demand")

    @property
    def snap_start(self) -> bool:
        """Whether init runs for a SnapStart snapshot (no connection survives the restore)."""
        return self.initialization_type == "snap-start"
