"""The API resolved in-process over the in-memory read store, with a fixed clock."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.api_store import Api, make_api


@pytest.fixture
def api(load_event: Any, lambda_context: Any) -> Api:
    return make_api(load_event, lambda_context)
