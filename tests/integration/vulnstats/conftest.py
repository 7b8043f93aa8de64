"""One moto server per test module, with the stack's real table and bucket from template.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from localstage.aws import prepare_local_stack, start_moto

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localstage.aws import MotoServer

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with start_moto("127.0.0.1", 0) as server:
        yield server


@pytest.fixture(scope="module")
def stack_resources(moto: MotoServer) -> dict[str, str]:
    """Logical id -> physical name/ARN/URL of the resources created from template.yaml."""
    _, created = prepare_local_stack(
        REPO / "template.yaml",
        moto.endpoint_url,
        vanta_credentials={"client_id": "x", "client_secret": "y"},
        region="us-east-1",
    )
    return created
