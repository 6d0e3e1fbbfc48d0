"""Settings: embedded with no variables, services by URL, and production failing closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings as s; django.setup(); print(json.dumps({"
    "'db': s.DATABASES['default']['ENGINE'], 'pool': 'pool' in s.DATABASES['default'].get('OPTIONS', {}),"
    "'cache': s.CACHES['default']['BACKEND'], 'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
    "'broker': s.CELERY_BROKER_URL, 'eager': s.CELERY_TASK_ALWAYS_EAGER, 'debug': s.DEBUG}))"
)
VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "HFT_ENV",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_DEBUG",
    "HFT_CREDENTIALS_KEY",
)

FERNET_KEY = "x" * 43 + "="  # any 32 bytes, url-safe base64


def load(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    clean.update(DJANGO_SETTINGS_MODULE="hftplatform.settings", HFT_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def test_no_variables_means_embedded(tmp_path: Path) -> None:
    result = load(tmp_path)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["db"] == "django.db.backends.sqlite3"
    assert facts["cache"].endswith("LocMemCache")
    assert facts["layer"] == "channels.layers.InMemoryChannelLayer"
    assert facts["eager"] is True
    assert facts["debug"] is False


def test_urls_switch_to_postgresql_with_a_pool_and_redis(tmp_path: Path) -> None:
    result = load(tmp_path, DATABASE_URL="postgres://u@db:5432/x", REDIS_URL="redis://r:6379/0")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["db"] == "django.db.backends.postgresql"
    assert facts["pool"] is True
    assert facts["cache"].endswith("RedisCache")
    assert facts["layer"] == "channels_redis.core.RedisChannelLayer"
    assert facts["broker"] == "redis://r:6379/0"
    assert facts["eager"] is False


def test_production_without_a_secret_key_refuses_to_start(tmp_path: Path) -> None:
    result = load(tmp_path, HFT_ENV="production", DJANGO_ALLOWED_HOSTS="api.example.com")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_without_allowed_hosts_refuses_to_start(tmp_path: Path) -> None:
    result = load(tmp_path, HFT_ENV="production", DJANGO_SECRET_KEY="s" * 50)
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS" in result.stderr


def test_production_without_a_credentials_key_refuses_to_start(tmp_path: Path) -> None:
    result = load(tmp_path, HFT_ENV="production", DJANGO_SECRET_KEY="s" * 50, DJANGO_ALLOWED_HOSTS="api.example.com")
    assert result.returncode != 0
    assert "HFT_CREDENTIALS_KEY" in result.stderr


def test_production_forces_debug_off(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        HFT_ENV="production",
        DJANGO_SECRET_KEY="s" * 50,
        DJANGO_ALLOWED_HOSTS="api.example.com",
        HFT_CREDENTIALS_KEY=FERNET_KEY,
        DJANGO_DEBUG="1",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is False
