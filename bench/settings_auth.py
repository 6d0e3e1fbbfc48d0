"""Settings for the auth + rate-limit benchmark: the project's own settings, with the bench endpoints routed."""

from hftplatform.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls_auth"
