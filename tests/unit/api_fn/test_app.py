"""The API routes of this version, resolved in-process from the API Gateway fixtures."""

from __future__ import annotations

import json
from typing import Any

from api_fn.app import create_app
from api_fn.settings import ApiSettings


def _settings() -> ApiSettings:
    return ApiSettings(
        app_version="1.4.2", stage_name="test", table_name="t", sync_function_name="sync"
    )


def test_health_answers_ok_with_the_deployed_version(load_event: Any, lambda_context: Any) -> None:
    # given the API and the /health fixture
    app = create_app(_settings())
    # when
    response = app.resolve(load_event("api_get_health.json"), lambda_context)
    # then
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok", "version": "1.4.2", "stage": "test"}


def test_unknown_route_is_404_not_500(load_event: Any, lambda_context: Any) -> None:
    event = load_event("api_get_health.json") | {"path": "/nope", "resource": "/nope"}
    response = create_app(_settings()).resolve(event, lambda_context)
    assert response["statusCode"] == 404
