"""Builds one invocation's sync engine from settings: the composition root of the sync."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from vulnstats.archive import S3Archive
from vulnstats.consumer import ConsumerPolicy, RequestConsumer
from vulnstats.dynamo import DynamoStore
from vulnstats.queue import SyncQueue, continuation_starter
from vulnstats.secrets import SecretCredentials
from vulnstats.sync import SyncConfig, SyncEngine
from vulnstats.vanta import VantaClient, VantaClientConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from lambdakit.metrics import MetricSink
    from sync_fn.settings import SyncSettings
    from vulnstats.triggers import Trigger

__all__ = ["build_consumer", "build_engine", "once_per_key"]

type Runner = Callable[[Trigger, Any], dict[str, Any]]


def once_per_key(settings: SyncSettings, run: Runner) -> Runner:
    """``run`` made idempotent on the trigger's idempotency key.

    Powertools keeps a record per key in the state table (its own partition, expired by the
    table's TTL): a second delivery of the same key gets the first one's answer, or
    IdempotencyAlreadyInProgressError while the first still runs.
    """
    config = IdempotencyConfig(
        event_key_jmespath="key", expires_after_seconds=settings.idempotency_ttl_seconds
    )
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value="IDEMPOTENCY#sync",
        expiry_attr="ttl",
    )

    def keyed(*, request: dict[str, str], trigger: Trigger, context: Any) -> dict[str, Any]:
        return run(trigger, context)

    # Powertools' decorator is untyped: keep the wrapped function's signature for mypy.
    once: Callable[..., dict[str, Any]] = idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=config
    )(keyed)

    def run_once(trigger: Trigger, context: Any) -> dict[str, Any]:
        config.register_lambda_context(context)
        return once(request={"key": trigger.idempotency_key}, trigger=trigger, context=context)

    return run_once


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
        # A continuation is a message on the SyncRequests queue, like every other request.
        start_continuation=continuation_starter(SyncQueue(settings.sync_queue_url).send),
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000.0,
        config=SyncConfig(
            time_margin_seconds=settings.time_margin_seconds,
            lease_margin_seconds=settings.deadline_margin_seconds,
            lock_lease_seconds=settings.lock_lease_seconds,
            page_size=settings.page_size,
        ),
        metrics=metrics,
    )


def build_consumer(
    settings: SyncSettings,
    context: Any,
    run: Callable[[Trigger], dict[str, Any]],
    logger: Any,
) -> RequestConsumer:
    """The SyncRequests consumer of one invocation; ``run`` handles one trigger."""
    return RequestConsumer(
        queue=SyncQueue(settings.sync_queue_url),
        runs=DynamoStore(settings.table_name),
        run=run,
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000.0,
        policy=ConsumerPolicy(
            deadline_margin_seconds=settings.deadline_margin_seconds,
            retry_seconds=float(settings.lock_lease_seconds),
            error_retry_seconds=settings.error_retry_seconds,
        ),
        logger=logger,
    )
