"""The Celery app: tasks discovered from the apps, and beat's schedule."""

from django.conf import settings

from hftplatform.celery import app


def test_beat_schedules_the_usage_flush_and_the_task_is_registered() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["flush-usage"]
    assert entry["task"] == "apps.tiers.tasks.flush_usage_task"
    assert entry["schedule"] == settings.HFT_USAGE_FLUSH_S
    app.loader.import_default_modules()
    assert "apps.tiers.tasks.flush_usage_task" in app.tasks
