"""App config for microstructure."""

from django.apps import AppConfig


class MicrostructureConfig(AppConfig):
    name = "apps.microstructure"
    label = "microstructure"
