"""Builds one invocation's sync engine from settings: the composition root of the sync."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vulnstats.archive import S3Archive
from vulnstats.dynamo import DynamoStore
from vulnstats.invoker import AsyncInvoker, continuation_starter
from vulnstats.secrets import SecretCredentials
from vulnstats.sync import SyncConfig, SyncEngine
from vulnstats.vanta import VantaClient, VantaClientConfig

if TYPE_CHECKING:
    from lambdakit.metrics import MetricSink
    from sync_fn.settings import SyncSettings

__all__ = ["build_engine"]


def build_engine(
    settings: SyncSettings, context: Any, metrics: MetricSink, logger: Any
) -> SyncEngine:
    """Wire the real adapters for one invocation; ``context`` is the Lambda context."""
    store = DynamoStore(settings.table_name)
    client = VantaClient(
        SecretCredentials(settings.vanta_secret_arn),
        config=VantaClientConfig(
            base_url=settings.vanta_api_base_url,
            page_size=settings.page_size,
            pages_per_minute=settings.pages_per_minute or None,
        ),
        remaining_ms=context.get_remaining_time_in_millis,
        metrics=metrics,
        logger=logger,
    )
    return SyncEngine(
        client=client,
        state=store,
        runs=store,
        snapshots=store,
        archive=S3Archive(settings.archive_bucket),
        # The sync publishes no versions or aliases: continue on the plain function name, which
        # is also the one resource its role may invoke.
        start_continuation=continuation_starter(AsyncInvoker(context.function_name)),
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000.0,
        config=SyncConfig(
            time_margin_seconds=settings.time_margin_seconds,
            lock_lease_seconds=settings.lock_lease_seconds,
            page_size=settings.page_size,
        ),
        metrics=metrics,
    )
