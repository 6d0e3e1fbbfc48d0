"""App config for tiers: connects the cache-invalidating signals and the OpenAPI auth extension."""

from django.apps import AppConfig


class TiersConfig(AppConfig):
    name = "apps.tiers"
    label = "tiers"
    verbose_name = "Tiers, customers and API keys"

    def ready(self) -> None:
        from apps.tiers import schema, signals  # noqa: F401
