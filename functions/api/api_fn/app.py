"""The API's routes on a Powertools REST resolver, built from settings (tests need no env)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

if TYPE_CHECKING:
    from api_fn.settings import ApiSettings

__all__ = ["create_app"]


def create_app(settings: ApiSettings) -> APIGatewayRestResolver:
    """A resolver with every route this version serves."""
    app = APIGatewayRestResolver()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": settings.app_version, "stage": settings.stage_name}

    return app
