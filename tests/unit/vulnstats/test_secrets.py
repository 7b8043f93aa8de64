"""Credentials from the secret: cached reads, one forced re-read after a rotation, clear errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from vulnstats.secrets import CredentialsError, SecretCredentials

if TYPE_CHECKING:
    from vulnstats.vanta import CredentialsProvider

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:vanta-AbCdEf"


class FakeFetch:
    def __init__(self, *values: Any) -> None:
        self.values = list(values)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, name: str, **options: Any) -> Any:
        self.calls.append({"name": name, **options})
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        if isinstance(value, Exception):
            raise value
        return value


def test_reads_the_pair_through_the_cache() -> None:
    fetch = FakeFetch({"client_id": "vci_a", "client_secret": "vcs_b"})
    credentials: CredentialsProvider = SecretCredentials(ARN, max_age=120, fetch=fetch)
    assert credentials() == ("vci_a", "vcs_b")
    assert fetch.calls == [{"name": ARN, "transform": "json", "max_age": 120, "force_fetch": False}]


def test_refresh_forces_exactly_one_fresh_read() -> None:
    fetch = FakeFetch(
        {"client_id": "vci_old", "client_secret": "vcs_old"},
        {"client_id": "vci_new", "client_secret": "vcs_new"},
    )
    credentials = SecretCredentials(ARN, fetch=fetch)
    credentials()
    credentials.refresh()
    assert credentials() == ("vci_new", "vcs_new")
    credentials()
    assert [call["force_fetch"] for call in fetch.calls] == [False, True, False]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"client_id": "vci_a"}, "missing or empty client_secret"),
        ({"client_id": "", "client_secret": "x"}, "missing or empty client_id"),
        (["not", "an", "object"], "is not a JSON object"),
        (GetParameterError("AccessDenied"), "cannot be read (AccessDenied)"),
    ],
)
def test_bad_secret_names_the_secret_and_the_problem_but_no_value(value: Any, message: str) -> None:
    credentials = SecretCredentials(ARN, fetch=FakeFetch(value))
    with pytest.raises(CredentialsError) as caught:
        credentials()
    assert str(caught.value).startswith(f"secret {ARN}: ")
    assert message in str(caught.value)
    assert "vci_a" not in str(caught.value)


def test_repr_never_shows_a_value() -> None:
    assert repr(SecretCredentials(ARN)) == f"SecretCredentials({ARN!r})"
