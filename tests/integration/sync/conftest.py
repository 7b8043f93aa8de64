"""Fixtures of the in-process sync suites: one moto server per module, a world per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sync_world import DATA, REGION, FakeClock, World, new_world, plan

from localstage.aws import MotoServer, local_client, start_moto
from localstage.vanta_standin import StandIn, start_standin

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with start_moto("127.0.0.1", 0) as server:
        yield server


@pytest.fixture(scope="module")
def dynamodb(moto: MotoServer) -> DynamoDBClient:
    client: DynamoDBClient = local_client("dynamodb", moto.endpoint_url, REGION)
    return client


@pytest.fixture(scope="module")
def s3(moto: MotoServer) -> S3Client:
    client: S3Client = local_client("s3", moto.endpoint_url, REGION)
    return client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def standin(clock: FakeClock) -> Iterator[StandIn]:
    with start_standin(port=0, dataset=DATA, clock=clock, faults=plan()) as server:
        yield server


@pytest.fixture
def world(
    moto: MotoServer, dynamodb: DynamoDBClient, s3: S3Client, standin: StandIn, clock: FakeClock
) -> Iterator[World]:
    yield from new_world(moto, dynamodb, s3, standin, clock)
