"""One cached client per (service, region, endpoint), tuned for Lambda, honouring endpoints."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lambdakit.clients import ClientOptions, clear_clients, configure_clients, get_client
from lambdakit.settings import SettingsError


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A region and dummy credentials; no endpoint or pool override unless a test sets one."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_S3",
        "MAX_POOL_CONNECTIONS",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_given_same_key_when_getting_twice_then_same_client() -> None:
    assert get_client("dynamodb") is get_client("dynamodb")


def test_given_other_region_or_endpoint_when_getting_then_distinct_clients() -> None:
    default = get_client("s3")
    other_region = get_client("s3", region="eu-west-1")
    other_endpoint = get_client("s3", endpoint_url="http://127.0.0.1:4566")

    assert len({id(default), id(other_region), id(other_endpoint)}) == 3
    assert other_region.meta.region_name == "eu-west-1"
    assert other_endpoint.meta.endpoint_url == "http://127.0.0.1:4566"


def test_given_defaults_when_creating_client_then_config_is_tuned_for_lambda() -> None:
    config = get_client("dynamodb").meta.config

    assert config.connect_timeout == 2.0
    assert config.read_timeout == 10.0
    assert config.max_pool_connections == 10
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert config.tcp_keepalive is True


def test_given_max_pool_connections_variable_when_creating_client_then_pool_size_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_POOL_CONNECTIONS", "25")

    assert get_client("dynamodb").meta.config.max_pool_connections == 25


def test_given_bad_max_pool_connections_when_creating_client_then_error_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_POOL_CONNECTIONS", "abc")

    with pytest.raises(SettingsError, match="MAX_POOL_CONNECTIONS: 'abc' is not an integer"):
        get_client("dynamodb")


def test_given_aws_endpoint_url_when_creating_client_then_botocore_uses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5001")

    assert get_client("dynamodb").meta.endpoint_url == "http://127.0.0.1:5000"
    assert get_client("s3").meta.endpoint_url == "http://127.0.0.1:5001"


def test_given_explicit_options_when_configured_then_new_clients_use_them() -> None:
    configure_clients(ClientOptions(max_pool_connections=3, connect_timeout=0.5))

    config = get_client("sqs").meta.config

    assert (config.max_pool_connections, config.connect_timeout) == (3, 0.5)


def test_given_cleared_cache_when_getting_then_a_new_client_is_created() -> None:
    first = get_client("sns")
    clear_clients()

    assert get_client("sns") is not first


def test_given_many_threads_when_first_use_races_then_one_client_is_created() -> None:
    threads = 12
    barrier = threading.Barrier(threads)
    results: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        client = get_client("secretsmanager")
        with lock:
            results.append(client)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()

    assert len(results) == threads
    assert len({id(client) for client in results}) == 1
