"""The vulnerability-statistics domain: models, Vanta client, statistics and storage adapters."""

__all__: list[str] = []
