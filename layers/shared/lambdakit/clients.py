"""One cached botocore client per (service, region, endpoint) per execution environment."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from lambdakit.lazy import lazy_import
from lambdakit.settings import env, in_range, load_settings, parse_int, settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    import botocore.config
    import botocore.session
else:
    botocore = lazy_import("botocore.session")

__all__ = [
    "ClientOptions",
    "clear_clients",
    "close_connections",
    "configure_clients",
    "get_client",
    "recreate_clients",
]


@settings
class ClientOptions:
    """Options of every client the cache creates; only ``MAX_POOL_CONNECTIONS`` is read from env."""

    max_pool_connections: int = env(
        "MAX_POOL_CONNECTIONS", in_range(parse_int, minimum=1, maximum=1000), default=10
    )
    # Not environment variables: code that needs other values passes its own ClientOptions.
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    # Total attempts (first call included) of botocore's own "standard" retry mode.
    max_attempts: int = 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientOptions:
        """Read the options from ``environ`` (default ``os.environ``); raises ``SettingsError``."""
        return load_settings(cls, environ)

    def to_config(self) -> botocore.config.Config:
        """The botocore ``Config``: timeouts, pool size, standard retry mode and TCP keep-alive."""
        import botocore.config  # noqa: PLC0415 - botocore is loaded only when a client is made

        return botocore.config.Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=self.max_pool_connections,
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            tcp_keepalive=True,
        )


class _ClientCache:
    """The per-environment state: options, one botocore session, the clients."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[tuple[str, str | None, str | None], Any] = {}
        self.options: ClientOptions | None = None
        self.session: botocore.session.Session | None = None
        self.config: botocore.config.Config | None = None

    def create(self, key: tuple[str, str | None, str | None]) -> Any:
        """Return the client for ``key``, creating the session and the client if needed."""
        # botocore sessions are not safe to share between threads while creating clients;
        # the clients themselves are, so only creation happens under the lock.
        with self.lock:
            client = self.clients.get(key)
            if client is not None:
                return client
            if self.options is None:
                self.options = ClientOptions.from_env()
            if self.config is None:
                self.config = self.options.to_config()
            if self.session is None:
                self.session = botocore.session.get_session()
            service, region, endpoint_url = key
            # endpoint_url=None lets botocore apply AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>,
            # which is how the local stage redirects clients with no special code path.
            client = self.session.create_client(
                service, region_name=region, endpoint_url=endpoint_url, config=self.config
            )
            self.clients[key] = client
            return client


_cache = _ClientCache()


def get_client(service: str, *, region: str | None = None, endpoint_url: str | None = None) -> Any:
    """Return the environment's client for ``service``, creating it on first use.

    One client per ``(service, region, endpoint_url)``; ``None`` means botocore's own resolution
    (``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL[_<SERVICE>]``). Thread-safe; a cache
    hit is one dictionary lookup. Annotate the result with the boto3-stubs type, e.g.
    ``table: DynamoDBClient = get_client("dynamodb")``.
    """
    key = (service, region, endpoint_url)
    client = _cache.clients.get(key)
    if client is None:
        client = _cache.create(key)
    return client


def configure_clients(options: ClientOptions) -> None:
    """Use ``options`` for clients created from now on (call at init, before the first client)."""
    with _cache.lock:
        _cache.options = options
        _cache.config = None


def clear_clients() -> None:
    """Drop every cached client, the session and the options (tests; re-read the environment)."""
    with _cache.lock:
        _cache.clients.clear()
        _cache.options = None
        _cache.config = None
        _cache.session = None


def close_connections() -> None:
    """Close the connection pools of every cached client (before a SnapStart snapshot).

    The clients stay usable: botocore opens new connections on the next call.
    """
    with _cache.lock:
        clients = list(_cache.clients.values())
    for client in clients:
        close = getattr(client, "close", None)
        if callable(close):
            close()


def recreate_clients() -> None:
    """Replace every cached client by a new one on a new session (after a SnapStart restore).

    The new session reuses the old one's data loader, so service models parsed during init are
    not read again. Code that kept a reference to an old client must fetch the new one.
    """
    with _cache.lock:
        keys = list(_cache.clients)
        old = _cache.session
        _cache.clients.clear()
        _cache.session = None
        if old is not None:
            session = botocore.session.get_session()
            session.register_component("data_loader", old.get_component("data_loader"))
            _cache.session = session
    for key in keys:
        _cache.create(key)
