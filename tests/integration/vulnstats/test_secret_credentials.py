"""SecretCredentials against a real Secrets Manager API (moto on loopback), no fakes in between."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import boto3
import pytest

from localstage.aws import aws_environment, start_moto
from locate import DUMMY_CREDENTIALS
from vulnstats.secrets import CredentialsError, SecretCredentials

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("secrets")]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with start_moto() as moto:
        yield moto.endpoint_url


def test_reads_the_credentials_then_the_rotated_ones_after_refresh(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a secret in Secrets Manager, reached as a function reaches it (AWS_ENDPOINT_URL)
    for name, value in aws_environment(endpoint, "us-east-1").items():
        monkeypatch.setenv(name, value)
    client = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=DUMMY_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
    )
    arn = client.create_secret(
        Name="vanta-rotation-test",
        SecretString=json.dumps({"client_id": "vci_1", "client_secret": "vcs_1"}),
    )["ARN"]
    credentials = SecretCredentials(arn, max_age=300)
    assert credentials() == ("vci_1", "vcs_1")
    # when the secret is rotated, the cached value stays until a refresh is asked for
    client.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"client_id": "vci_2", "client_secret": "vcs_2"})
    )
    assert credentials() == ("vci_1", "vcs_1")
    credentials.refresh()
    assert credentials() == ("vci_2", "vcs_2")


def test_an_unknown_secret_is_a_clear_error(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in aws_environment(endpoint, "us-east-1").items():
        monkeypatch.setenv(name, value)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf"
    with pytest.raises(CredentialsError, match=f"secret {arn}: cannot be read"):
        SecretCredentials(arn)()
