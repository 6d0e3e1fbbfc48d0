"""Settings for the auth + rate-limit benchmark: the project's own settings, with the bench endpoints routed
and the round-trip-only middleware placed where the rate-limit middleware is (bench/urls_auth.py)."""

from hftplatform.settings import *  # noqa: F403
from hftplatform.settings import MIDDLEWARE

ROOT_URLCONF = "bench.urls_auth"
_AT = MIDDLEWARE.index("apps.tiers.middleware.RateLimitHeadersMiddleware")
MIDDLEWARE = [*MIDDLEWARE[:_AT], "bench.urls_auth.RoundTripOnlyMiddleware", *MIDDLEWARE[_AT:]]
