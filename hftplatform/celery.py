"""The Celery application: broker from settings (Redis in production), tasks discovered in the apps."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hftplatform.settings")

app = Celery("hftplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
