"""hftplatform project package: settings, ASGI and URL wiring, Celery app, embedded runner."""

from .celery import app as celery_app

__all__ = ["celery_app"]
